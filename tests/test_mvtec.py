import json
import functools
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import adkit.data
from adkit.data import mvtec


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _fake_category(base: Path, name: str = "bottle", gray: bool = False) -> Path:
    """A tiny MVTec-like category: 2 train images, 1 good and 2 defective test images
    (with masks) of 40x40 pixels."""
    rng = np.random.default_rng(0)
    cat = base / name

    def img():
        shape = (40, 40) if gray else (40, 40, 3)
        return rng.integers(0, 256, shape, dtype=np.uint8)

    _png(cat / "train" / "good" / "000.png", img())
    _png(cat / "train" / "good" / "001.png", img())
    _png(cat / "test" / "good" / "000.png", img())
    _png(cat / "test" / "broken" / "000.png", img())
    _png(cat / "test" / "broken" / "001.png", img())
    mask = np.zeros((40, 40), np.uint8)
    mask[8:16, 20:32] = 255
    _png(cat / "ground_truth" / "broken" / "000_mask.png", mask)
    mask2 = np.zeros((40, 40), np.uint8)
    mask2[30:, :4] = 255
    _png(cat / "ground_truth" / "broken" / "001_mask.png", mask2)
    return cat


def _tar_xz(src_dir: Path, dest: Path, arcname: str) -> Path:
    with tarfile.open(dest, "w:xz") as tar:
        tar.add(src_dir, arcname=arcname)
    return dest


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 (free port) serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    _Quiet.requests = []
    handler = functools.partial(_Quiet, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_download_per_category_then_load(tmp_path, server):
    www, base = server
    src = tmp_path / "src"
    _fake_category(src, "bottle", gray=True)
    _tar_xz(src / "bottle", www / "bottle.tar.xz", "bottle")
    root = tmp_path / "mvtec"

    out = mvtec.download(root, ["bottle"], url=base + "/{category}.tar.xz", progress=False)
    assert out == root
    assert _Quiet.requests == ["/bottle.tar.xz"]
    assert not list(root.glob(".adkit-download-*"))  # the archive is removed

    train, test = mvtec.load("bottle", root=root, size=32)
    assert train.images.shape == (2, 32, 32, 3) and train.images.dtype == np.float32
    assert test.images.shape == (3, 32, 32, 3)
    # grayscale files come back as RGB with equal channels
    assert np.array_equal(test.images[..., 0], test.images[..., 2])
    assert test.names == ["good/000", "broken/000", "broken/001"]
    assert test.defect_types == ["good", "broken", "broken"]
    assert test.labels.tolist() == [0, 1, 1]
    assert not test.masks[0].any()
    # nearest-neighbour resize of the mask: 8x12 pixels at 40 px -> 6.4x9.6 at 32 px
    assert test.masks[1].dtype == bool and 50 <= test.masks[1].sum() <= 80
    assert test.masks[1][10, 20] and not test.masks[1][0, 0]
    # native size and the pixel values of the files
    train, test = mvtec.load("bottle", root=root, size=None)
    ref = np.asarray(Image.open(root / "bottle" / "test" / "broken" / "001.png"))
    assert np.allclose(test.images[2, ..., 1], ref / 255.0)
    assert test.masks[1].sum() == 8 * 12

    # already there: no second request
    mvtec.download(root, ["bottle"], url=base + "/{category}.tar.xz", progress=False)
    assert len(_Quiet.requests) == 1


def test_download_one_archive_and_load_through_env(tmp_path, server, monkeypatch):
    www, base = server
    src = tmp_path / "src"
    _fake_category(src, "bottle")
    _fake_category(src, "tile")
    with tarfile.open(www / "all.tar.xz", "w:xz") as tar:
        tar.add(src / "bottle", arcname="bottle")
        tar.add(src / "tile", arcname="tile")
    root = tmp_path / "mvtec"
    mvtec.download(root, ["bottle", "tile"], url=base + "/all.tar.xz", progress=False)
    assert mvtec.categories_in(root) == ["bottle", "tile"]
    monkeypatch.setenv("ADKIT_MVTEC_ROOT", str(root))
    train, test = adkit.data.load("mvtec/tile", size=16)
    assert len(train) == 2 and len(test) == 3 and test.size == (16, 16)


def test_download_rejects_unsafe_or_wrong_archives(tmp_path, server):
    www, base = server
    payload = b"hello"
    with tarfile.open(www / "evil.tar.xz", "w:xz") as tar:
        info = tarfile.TarInfo("bottle/../../evil.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with tarfile.open(www / "abs.tar.xz", "w:xz") as tar:
        info = tarfile.TarInfo("/tmp/adkit-evil.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    (www / "page.tar.xz").write_bytes(b"<html>login required</html>")
    root = tmp_path / "mvtec"
    with pytest.raises(ValueError, match="leaving the target folder"):
        mvtec.download(root, ["bottle"], url=base + "/evil.tar.xz", progress=False)
    with pytest.raises(ValueError, match="absolute path"):
        mvtec.download(root, ["bottle"], url=base + "/abs.tar.xz", progress=False)
    with pytest.raises(ValueError, match="not a tar archive"):
        mvtec.download(root, ["bottle"], url=base + "/page.tar.xz", progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert list(root.iterdir()) == []          # nothing extracted, no leftover
    with pytest.raises(ConnectionError, match="HTTP 404"):
        mvtec.download(root, ["bottle"], url=base + "/nothing.tar.xz", progress=False)
    # an archive without the requested category
    src = tmp_path / "src"
    _fake_category(src, "wood")
    _tar_xz(src / "wood", www / "wood.tar.xz", "wood")
    with pytest.raises(FileNotFoundError, match="did not provide the category \\['bottle'\\]"):
        mvtec.download(root, ["bottle"], url=base + "/wood.tar.xz", progress=False)


def test_official_urls_are_documented():
    assert set(mvtec.CATEGORY_URLS) == set(mvtec.CATEGORIES) and len(mvtec.CATEGORIES) == 15
    assert mvtec.DEFAULT_URL.endswith("mvtec_anomaly_detection.tar.xz")
    assert all(u.endswith(f"/{c}.tar.xz") for c, u in mvtec.CATEGORY_URLS.items())
    with pytest.raises(ValueError, match="unknown MVTec AD category"):
        mvtec.download("/nonexistent", ["bottles"])


def test_wrong_root_gives_the_expected_layout(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as err:
        mvtec.load("bottle", root=tmp_path / "nowhere")
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "ground_truth/" in msg and "train/" in msg
    monkeypatch.delenv("ADKIT_MVTEC_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="ADKIT_MVTEC_ROOT"):
        mvtec.load("bottle")
    _fake_category(tmp_path, "bottle")
    with pytest.raises(FileNotFoundError, match="Categories found under .*\\['bottle'\\]"):
        mvtec.load("cable", root=tmp_path)
    # a category folder without test/
    (tmp_path / "grid" / "train" / "good").mkdir(parents=True)
    _png(tmp_path / "grid" / "train" / "good" / "000.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(FileNotFoundError, match="test folder .*grid.test is missing"):
        mvtec.load("grid", root=tmp_path)


def test_corrupt_png_names_the_file(tmp_path):
    cat = _fake_category(tmp_path)
    bad = cat / "test" / "broken" / "001.png"
    bad.write_bytes(bad.read_bytes()[:60])   # truncated file
    with pytest.raises(ValueError, match="could not read the image file .*broken.001.png"):
        mvtec.load("bottle", root=tmp_path, size=16)


def test_missing_mask_names_the_file(tmp_path):
    cat = _fake_category(tmp_path)
    (cat / "ground_truth" / "broken" / "001_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match="001_mask.png .* is missing"):
        mvtec.load("bottle", root=tmp_path, size=16)


def test_subsets_are_seeded_and_keep_both_classes(tmp_path):
    cat = _fake_category(tmp_path)
    for i in range(2, 8):   # more good test images
        _png(cat / "test" / "good" / f"{i:03d}.png", np.full((40, 40, 3), i, np.uint8))
    a = mvtec.load("bottle", root=tmp_path, size=16, n_train=1, n_test=4, seed=3)
    b = mvtec.load("bottle", root=tmp_path, size=16, n_train=1, n_test=4, seed=3)
    assert a[1].names == b[1].names and a[0].names == b[0].names
    assert len(a[0]) == 1 and len(a[1]) == 4
    assert a[1].labels.sum() == 1          # 2 of 9 defective -> 1 of 4
    assert np.array_equal(a[1].images, b[1].images)


def test_bench_runs_on_the_mvtec_layout(tmp_path, capsys):
    """`python -m adkit bench --data mvtec/<category> --root DIR` prints the same table."""
    from adkit.cli import main
    _fake_category(tmp_path)
    rc = main(["bench", "--data", "mvtec/bottle", "--root", str(tmp_path),
               "--methods", "reference", "--size", "32", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rc == 0, rows
    assert rows[0]["data"] == "mvtec/bottle" and rows[0]["n_fit"] == 2 and rows[0]["n_pred"] == 3
    assert 0.0 <= rows[0]["image_auroc"] <= 1.0 and rows[0]["peak_MB"] > 0
