"""Exact nearest-neighbour search of feature vectors (L2), shared by the detectors.

Every nearest-neighbour search of adkit goes through :func:`nearest_neighbors`: faiss
(exact L2, ``IndexFlatL2``; faiss's GPU index when a GPU build is installed and CUDA is
present) or torch in blocks (``search="torch"``). :func:`faiss_index` builds an index
once for a bank that is searched many times. Banks of millions of entries searched
with few queries at a time (self-similarity's fallback over every training patch)
use an inverted file (:func:`ivf_index`) and :func:`search`, which can also skip a
range of ids (leave-one-out).
"""
from __future__ import annotations

import numpy as np

__all__ = ["nearest_neighbors", "faiss_index", "faiss_module", "ivf_index",
           "ivf_centroids", "search"]


def faiss_module():
    """The ``faiss`` module, or None when it is not installed."""
    try:
        import faiss
        return faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        return None


def nearest_neighbors(queries, bank, k: int = 1, search: str = "auto", device=None,
                      index=None):
    """Exact L2 k nearest neighbours of ``queries`` (Q, D) in ``bank`` (M, D).

    Returns ``(distances (Q, k) float32, indices (Q, k) int64)`` (Euclidean, not
    squared), numpy. ``search``: "faiss", "torch" or "auto" (faiss when installed;
    faiss's GPU index when it has one and CUDA is present). ``index``: a faiss index
    already holding ``bank`` (reused).
    """
    import torch
    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = int(min(k, len(bank) if index is None else index.ntotal))
    faiss = faiss_module() if search in ("auto", "faiss") else None
    if search == "faiss" and faiss is None:
        raise ImportError("search='faiss' needs faiss (pip install faiss-cpu).")
    if faiss is not None:
        if index is None:
            index = faiss_index(np.ascontiguousarray(bank, dtype=np.float32), device)
        d2, idx = index.search(q, k)
        return np.sqrt(np.maximum(d2, 0)).astype(np.float32), idx.astype(np.int64)
    from .torch_utils import default_device
    dev = default_device(device)
    b = torch.as_tensor(np.ascontiguousarray(bank, dtype=np.float32)).to(dev)
    bsq = (b * b).sum(1)
    ds, ids = [], []
    step = max(1, int(2e8 // (4 * max(1, len(b)))))
    for i in range(0, len(q), step):
        qi = torch.from_numpy(q[i:i + step]).to(dev)
        d2 = (qi * qi).sum(1, keepdim=True) - 2 * qi @ b.T + bsq
        v, j = torch.topk(d2, k, dim=1, largest=False)
        ds.append(v.clamp_min(0).sqrt().cpu())
        ids.append(j.cpu())
    return torch.cat(ds).numpy().astype(np.float32), torch.cat(ids).numpy().astype(np.int64)


def faiss_index(bank, device=None):
    """An exact L2 faiss index (``IndexFlatL2``) holding ``bank`` (M, D) float32, on the
    GPU when ``device`` allows it, faiss has a GPU build and CUDA is present; pass it as
    ``index=`` to :func:`nearest_neighbors` to search the same bank many times."""
    faiss = faiss_module()
    index = faiss.IndexFlatL2(bank.shape[1])
    try:
        import torch
        want_gpu = (device is None or str(device).startswith("cuda")) and \
            torch.cuda.is_available() and hasattr(faiss, "StandardGpuResources") and \
            faiss.get_num_gpus() > 0
    except Exception:  # pragma: no cover
        want_gpu = False
    if want_gpu:  # pragma: no cover - needs a GPU build of faiss
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
        index._adkit_res = res
    index.add(bank)
    return index


def ivf_index(bank, nlist: int | None = None, centroids=None, seed: int = 1234):
    """An inverted-file faiss index (``IndexIVFFlat``, L2) holding ``bank`` (M, D): its
    ``nlist`` lists are the k-means centroids (10 iterations, ``seed``) of 64·nlist
    points of the bank drawn with a fixed seed, or the given ``centroids`` (nlist, D),
    which rebuild the same index. ``nlist`` None: ``≈ √M`` (a power of 2 in [64, 1024]).
    A search visits ``nprobe`` lists (:func:`search`): approximate, exact when
    ``nprobe = nlist``. :func:`ivf_centroids` gives the centroids back."""
    faiss = faiss_module()
    if faiss is None:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError("an inverted-file index needs faiss (pip install faiss-cpu).")
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    dim = bank.shape[1]
    if centroids is None:
        if nlist is None:
            nlist = int(np.clip(2 ** round(np.log2(np.sqrt(len(bank)))), 64, 1024))
        nlist = int(min(nlist, len(bank)))
        pick = np.random.default_rng(0).choice(len(bank), min(len(bank), 64 * nlist),
                                               replace=False)
        km = faiss.Kmeans(dim, nlist, niter=10, seed=int(seed))
        km.train(np.ascontiguousarray(bank[np.sort(pick)]))
        centroids = km.centroids
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    quant = faiss.IndexFlatL2(dim)
    quant.add(centroids)
    index = faiss.IndexIVFFlat(quant, dim, len(centroids))   # keeps a reference to quant
    index.is_trained = True
    index.add(bank)
    return index


def ivf_centroids(index) -> np.ndarray:
    """The (nlist, D) centroids of an inverted-file index (to rebuild it with
    :func:`ivf_index`)."""
    return np.ascontiguousarray(index.quantizer.reconstruct_n(0, index.nlist),
                                dtype=np.float32)


def search(index, queries, k: int, exclude=None, nprobe: int = 16):
    """The ``k`` nearest entries of ``queries`` (Q, D) in a faiss ``index`` (flat or
    inverted file): ``(squared L2 distances (Q, k) float32, ids (Q, k) int64)``, id −1
    where fewer than ``k`` entries are left. ``exclude``: a range ``(lo, hi)`` of ids to
    skip (e.g. the image being left out); ``nprobe``: lists visited by an inverted file."""
    faiss = faiss_module()
    q = np.ascontiguousarray(queries, dtype=np.float32)
    ivf = isinstance(index, faiss.IndexIVF)
    params = faiss.SearchParametersIVF() if ivf else faiss.SearchParameters()
    if ivf:
        params.nprobe = int(min(nprobe, index.nlist))
    if exclude is not None:
        keep = faiss.IDSelectorRange(int(exclude[0]), int(exclude[1]))
        sel = faiss.IDSelectorNot(keep)
        params.sel = sel
    d2, ids = index.search(q, int(k), params=params)
    return d2, ids.astype(np.int64)
