"""adkit.neighbors: the inverted file and the search that skips a range of ids."""
import numpy as np

from adkit.neighbors import faiss_index, ivf_centroids, ivf_index, search


def _bank(n=20_000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (40, d))
    return (centres[rng.integers(0, 40, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def test_inverted_file_visiting_every_list_is_the_exact_search():
    bank = _bank()
    q = _bank(300, seed=1)
    ivf = ivf_index(bank, nlist=64)
    d_ivf, i_ivf = search(ivf, q, 8, nprobe=64)
    d_flat, i_flat = search(faiss_index(bank, device="cpu"), q, 8)
    np.testing.assert_array_equal(i_ivf, i_flat)
    np.testing.assert_allclose(d_ivf, d_flat, rtol=1e-4, atol=1e-4)
    # brute force
    ref = ((q[:, None] - bank[None]) ** 2).sum(-1)
    np.testing.assert_allclose(d_flat, np.sort(ref, 1)[:, :8], rtol=1e-4, atol=1e-3)
    # 16 of 64 lists on clustered data: nearly always the same nearest neighbour
    _, i16 = search(ivf, q, 1, nprobe=16)
    assert np.mean(i16[:, 0] == i_flat[:, 0]) > 0.95


def test_search_skips_an_id_range_and_the_index_rebuilds_from_its_centroids():
    bank = _bank()
    q = bank[5000:5010] + 1e-3            # their nearest entries are themselves
    for index in (faiss_index(bank, device="cpu"), ivf_index(bank, nlist=64)):
        _, ids = search(index, q, 3)
        assert np.all(ids[:, 0] == np.arange(5000, 5010))
        _, ids = search(index, q, 3, exclude=(4000, 6000))
        assert np.all((ids < 4000) | (ids >= 6000)) and np.all(ids >= 0)
    ivf = ivf_index(bank, nlist=64)
    again = ivf_index(bank, centroids=ivf_centroids(ivf))
    np.testing.assert_array_equal(search(ivf, q, 5)[1], search(again, q, 5)[1])
