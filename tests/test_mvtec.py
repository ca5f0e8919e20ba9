import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
import time
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


class _Archives(http.server.BaseHTTPRequestHandler):
    """Serves the files of ``server.www`` with HTTP Range (206 / 416) and If-Range
    (strong ETag), and misbehaves on demand through ``server.state``:

    - ``cut``: send only that many bytes of the body, then
    - ``stall``: hold the connection open that many seconds (else close it at once:
      a dropped connection, the body truncated).
    """

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        st = self.server.state
        st["requests"].append({"path": self.path, "range": self.headers.get("Range"),
                               "if_range": self.headers.get("If-Range")})
        f = self.server.www / self.path.lstrip("/")
        if not f.is_file():
            self.send_error(404, "Not Found")
            return
        data = f.read_bytes()
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
        start, rng = 0, self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and (if_range is None or if_range == etag):
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", etag)
        self.end_headers()
        body = data[start:]
        cut = st.get("cut")
        if cut is not None and cut < len(body):
            self.wfile.write(body[:cut])
            self.wfile.flush()
            if st.get("stall"):
                st["release"].wait(st["stall"])
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 (free port) serving tmp_path/www; returns
    (www, base_url, state) with state["requests"] the requests it received."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Archives)
    httpd.www = www
    httpd.state = {"requests": [], "release": threading.Event()}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state
    finally:
        httpd.state["release"].set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_download_per_category_then_load(tmp_path, server):
    www, base, state = server
    src = tmp_path / "src"
    _fake_category(src, "bottle", gray=True)
    _tar_xz(src / "bottle", www / "bottle.tar.xz", "bottle")
    root = tmp_path / "mvtec"

    out = mvtec.download(root, ["bottle"], url=base + "/{category}.tar.xz", progress=False)
    assert out == root
    assert [r["path"] for r in state["requests"]] == ["/bottle.tar.xz"]
    assert sorted(p.name for p in root.iterdir()) == ["bottle"]  # no .part, no staging

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
    assert len(state["requests"]) == 1


def test_download_one_archive_and_load_through_env(tmp_path, server, monkeypatch):
    www, base, _ = server
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
    www, base, _ = server
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


# -- download: resume, deadline, stall, size, checksum, present categories ------------

def _archive(tmp_path, www, name="bottle") -> bytes:
    src = tmp_path / "src"
    _fake_category(src, name)
    return _tar_xz(src / name, www / f"{name}.tar.xz", name).read_bytes()


def _parts(root):
    return sorted(root.glob(".adkit-*.part"))


def test_truncated_download_keeps_the_part_and_the_next_call_resumes(tmp_path, server):
    www, base, state = server
    data = _archive(tmp_path, www)
    url = base + "/bottle.tar.xz"
    root = tmp_path / "mvtec"
    state["cut"] = len(data) // 2            # the server drops the connection midway
    with pytest.raises(mvtec.DownloadError, match="stopped early") as err:
        mvtec.download(root, ["bottle"], url=url, progress=False)
    msg = str(err.value)
    assert url in msg and "again" in msg and f"{len(data) // 2} of {len(data)} bytes" in msg
    (part,) = _parts(root)
    assert part.read_bytes() == data[:len(data) // 2]
    assert not (root / "bottle").exists()    # nothing extracted from a partial file

    state["cut"] = None
    mvtec.download(root, ["bottle"], url=url, progress=False)
    last = state["requests"][-1]
    assert last["range"] == f"bytes={len(data) // 2}-"     # continued, not restarted
    assert last["if_range"] == '"' + hashlib.sha1(data).hexdigest() + '"'
    assert _parts(root) == [] and not list(root.glob(".adkit-*"))
    train, test = mvtec.load("bottle", root=root, size=None)
    ref = np.asarray(Image.open(tmp_path / "src" / "bottle" / "test" / "broken" / "001.png"))
    assert np.allclose(test.images[2], ref / 255.0) and len(train) == 2


def test_resume_restarts_when_the_remote_file_changed(tmp_path, server):
    www, base, state = server
    data = _archive(tmp_path, www)
    url = base + "/bottle.tar.xz"
    root = tmp_path / "mvtec"
    state["cut"] = 1000
    with pytest.raises(mvtec.DownloadError):
        mvtec.download(root, ["bottle"], url=url, progress=False)
    # the archive on the server is replaced by another one (another edition)
    src2 = tmp_path / "src2"
    _fake_category(src2, "bottle")
    _png(src2 / "bottle" / "train" / "good" / "002.png", np.full((40, 40, 3), 7, np.uint8))
    new = _tar_xz(src2 / "bottle", www / "bottle.tar.xz", "bottle").read_bytes()
    assert new[:1000] != data[:1000] or len(new) != len(data)
    state["cut"] = None
    mvtec.download(root, ["bottle"], url=url, progress=False)
    assert state["requests"][-1]["range"] == "bytes=1000-"   # asked to resume...
    assert (root / "bottle" / "train" / "good" / "002.png").is_file()  # ...got the new file
    assert len(mvtec.load("bottle", root=root, size=16)[0]) == 3


def test_a_complete_part_is_not_downloaded_again(tmp_path, server, monkeypatch):
    www, base, state = server
    _archive(tmp_path, www)
    url = base + "/bottle.tar.xz"
    root = tmp_path / "mvtec"

    def crash(*a, **k):
        raise OSError("disk full")   # extraction fails after the download is complete
    monkeypatch.setattr(mvtec, "_extract", crash)
    with pytest.raises(OSError, match="disk full"):
        mvtec.download(root, ["bottle"], url=url, progress=False)
    assert len(_parts(root)) == 1
    monkeypatch.undo()
    mvtec.download(root, ["bottle"], url=url, progress=False)
    assert len(state["requests"]) == 1 and mvtec.categories_in(root) == ["bottle"]


def test_stalled_download_and_deadline_give_clear_errors(tmp_path, server):
    www, base, state = server
    data = _archive(tmp_path, www)
    url = base + "/bottle.tar.xz"
    root = tmp_path / "mvtec"
    state.update(cut=2000, stall=30)         # 2000 bytes, then silence
    t0 = time.monotonic()
    with pytest.raises(mvtec.DownloadError, match="stalled: no data for stall_timeout=0.5 s"
                       ) as err:
        mvtec.download(root, ["bottle"], url=url, progress=False, stall_timeout=0.5)
    assert time.monotonic() - t0 < 10 and url in str(err.value)
    assert _parts(root)[0].stat().st_size == 2000
    # the next call resumes, gets 2000 more bytes, stalls again: the deadline stops it
    t0 = time.monotonic()
    with pytest.raises(mvtec.DownloadError, match="within deadline=0.8 s") as err:
        mvtec.download(root, ["bottle"], url=url, progress=False, deadline=0.8,
                       stall_timeout=20)
    assert time.monotonic() - t0 < 10 and "call download() again" in str(err.value)
    assert state["requests"][-1]["range"] == "bytes=2000-"
    assert _parts(root)[0].stat().st_size == 4000
    state.update(cut=None, stall=None)
    mvtec.download(root, ["bottle"], url=url, progress=False)
    assert mvtec.categories_in(root) == ["bottle"] and _parts(root) == []
    with pytest.raises(ValueError, match="deadline must be in"):
        mvtec.download(tmp_path / "x", ["bottle"], url=url, deadline=0)
    assert len(data) > 4000


def test_checksum_is_checked_when_known(tmp_path, server):
    www, base, _ = server
    data = _archive(tmp_path, www)
    url = base + "/bottle.tar.xz"
    root = tmp_path / "mvtec"
    assert mvtec.SHA256 == {}                 # no official checksum is invented
    with pytest.raises(mvtec.DownloadError, match="SHA-256 .* expected 0{64}") as err:
        mvtec.download(root, ["bottle"], url=url, progress=False, sha256="0" * 64)
    assert url in str(err.value)
    assert list(root.iterdir()) == []         # the wrong file is deleted, nothing extracted
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        mvtec.download(root, ["bottle"], url=url, progress=False, sha256="abc")
    good = hashlib.sha256(data).hexdigest()
    mvtec.download(root, ["bottle"], url=url, progress=False, sha256={"bottle": good.upper()})
    assert mvtec.categories_in(root) == ["bottle"]


def test_present_categories_are_skipped_unless_force(tmp_path, server):
    www, base, state = server
    src = tmp_path / "src"
    _fake_category(src, "bottle")
    _fake_category(src, "tile")
    with tarfile.open(www / "all.tar.xz", "w:xz") as tar:
        tar.add(src / "bottle", arcname="bottle")
        tar.add(src / "tile", arcname="tile")
        info = tarfile.TarInfo("license.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"CC-"))
    url = base + "/all.tar.xz"
    root = tmp_path / "mvtec"
    mvtec.download(root, ["bottle"], url=url, progress=False)
    assert mvtec.categories_in(root) == ["bottle"]   # tile was in the archive, not asked
    assert (root / "license.txt").read_bytes() == b"CC-"
    edited = root / "bottle" / "train" / "good" / "000.png"
    _png(edited, np.zeros((40, 40, 3), np.uint8))
    mine = root / "bottle" / "notes.txt"
    mine.write_text("mine")
    original = (src / "bottle" / "train" / "good" / "000.png").read_bytes()

    mvtec.download(root, ["bottle", "tile"], url=url, progress=False)
    assert mvtec.categories_in(root) == ["bottle", "tile"]
    assert edited.read_bytes() != original            # bottle was present: untouched
    mvtec.download(root, ["bottle", "tile"], url=url, progress=False)
    assert len(state["requests"]) == 2                # all present: no request at all

    mvtec.download(root, ["bottle"], url=url, progress=False, force=True)
    assert edited.read_bytes() == original            # force: the archive's file again
    assert mine.read_text() == "mine"                 # other files stay
    assert len(state["requests"]) == 3


# -- the reader never returns wrong data silently --------------------------------------

def _png16_rgb(path: Path, array: np.ndarray) -> None:
    """Write a 16-bit RGB PNG (PIL cannot): IHDR bit depth 16, colour type 2."""
    import struct
    import zlib
    h, w, _ = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2,
                                                                          0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16_bit_png_is_scaled_by_the_bit_depth_not_by_each_image(tmp_path):
    cat = _fake_category(tmp_path)
    a = np.full((40, 40), 16385, np.uint16)      # the same raw value in both images...
    b = a.copy()
    b[0, 0] = 65535                              # ...one of which also has a white pixel
    _png(cat / "train" / "good" / "000.png", a)
    _png(cat / "train" / "good" / "001.png", b)
    assert Image.open(cat / "train" / "good" / "000.png").mode.startswith("I;16")
    train, _ = mvtec.load("bottle", root=tmp_path, size=None)
    assert train.images.dtype == np.float32
    # 16385 / 65535, kept beyond 8 bits (16385 is no multiple of 257)
    assert np.allclose(train.images[0], 16385 / 65535, atol=1e-7)
    assert np.allclose(train.images[1, 1:, 1:], 16385 / 65535, atol=1e-7)
    assert train.images[1, 0, 0, 0] == 1.0
    # resized, the constant image stays at its value (no trip through 8 bits)
    train, _ = mvtec.load("bottle", root=tmp_path, size=16)
    assert np.allclose(train.images[0], 16385 / 65535, atol=1e-6)


def test_16_bit_rgb_tiff_is_exact_and_16_bit_rgb_png_warns(tmp_path):
    import tifffile
    cat = _fake_category(tmp_path)
    rgb = np.zeros((40, 40, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 1, 30001, 65535
    tifffile.imwrite(cat / "train" / "good" / "001.tif", rgb)
    (cat / "train" / "good" / "001.png").unlink()
    train, _ = mvtec.load("bottle", root=tmp_path, size=None)
    assert np.allclose(train.images[1, 5, 5], [1 / 65535, 30001 / 65535, 1.0], atol=1e-7)
    _png16_rgb(cat / "train" / "good" / "002.png", rgb)
    with pytest.warns(adkit.data.files.PrecisionWarning, match="002.png holds 16 bits"):
        train, _ = mvtec.load("bottle", root=tmp_path, size=None)
    assert np.allclose(train.images[2, 5, 5], [0, 117 / 255, 1.0], atol=1e-6)


def test_float_tiff_is_read_as_float_and_out_of_range_is_refused(tmp_path):
    cat = _fake_category(tmp_path)
    ramp = np.linspace(0.1, 0.9, 40 * 40, dtype=np.float32).reshape(40, 40)
    Image.fromarray(ramp).save(cat / "train" / "good" / "001.tif")     # PIL mode F
    (cat / "train" / "good" / "001.png").unlink()
    assert Image.open(cat / "train" / "good" / "001.tif").mode == "F"
    train, _ = mvtec.load("bottle", root=tmp_path, size=None)
    assert np.array_equal(train.images[1, ..., 0], ramp)
    assert np.array_equal(train.images[1, ..., 2], ramp)
    Image.fromarray(ramp * 300).save(cat / "train" / "good" / "001.tif")
    with pytest.raises(ValueError, match="001.tif: it holds floating-point values in "
                                         r"\[30, 270\].*\[0, 1\]"):
        mvtec.load("bottle", root=tmp_path, size=None)


def test_32_bit_integer_images_are_refused_and_1_bit_images_read(tmp_path):
    cat = _fake_category(tmp_path)
    Image.fromarray(np.full((40, 40), 70000, np.int32)).save(cat / "train" / "good" / "001.tif")
    (cat / "train" / "good" / "001.png").unlink()
    with pytest.raises(ValueError, match="001.tif: it holds int32 values.*8 or 16 bits"):
        mvtec.load("bottle", root=tmp_path, size=None)
    (cat / "train" / "good" / "001.tif").unlink()
    Image.fromarray(np.eye(40, dtype=bool)).save(cat / "train" / "good" / "001.png")
    assert Image.open(cat / "train" / "good" / "001.png").mode == "1"
    train, _ = mvtec.load("bottle", root=tmp_path, size=None)
    assert np.array_equal(train.images[1, ..., 1], np.eye(40, dtype=np.float32))


def test_masks_stored_as_0_1_are_defects(tmp_path):
    cat = _fake_category(tmp_path)
    m = np.zeros((40, 40), np.uint8)
    m[5:10, 5:10] = 1
    _png(cat / "ground_truth" / "broken" / "000_mask.png", m)
    _, test = mvtec.load("bottle", root=tmp_path, size=None)
    assert test.masks[1].sum() == 25 and test.masks[1][7, 7]


def test_a_mask_of_the_wrong_size_is_an_error_even_with_size(tmp_path):
    cat = _fake_category(tmp_path)
    _png(cat / "ground_truth" / "broken" / "001_mask.png", np.full((20, 20), 255, np.uint8))
    for size in (16, None, 40):
        with pytest.raises(ValueError, match="the mask .*broken.001_mask.png is 20x20 pixels "
                                             "but its image is 40x40"):
            mvtec.load("bottle", root=tmp_path, size=size)


def test_hidden_files_and_folders_are_ignored(tmp_path):
    cat = _fake_category(tmp_path)
    junk = b"\x00\x05\x16\x07" + b"\x00" * 60          # an AppleDouble resource fork
    for folder in ("train/good", "test/good", "test/broken", "ground_truth/broken"):
        (cat / folder / "._000.png").write_bytes(junk)
        (cat / folder / ".DS_Store").write_bytes(junk)
    (cat / "test" / ".ipynb_checkpoints").mkdir()
    _png(cat / "test" / ".ipynb_checkpoints" / "000.png", np.zeros((40, 40, 3), np.uint8))
    (cat / "test" / "__MACOSX").mkdir()
    (cat / "test" / "__MACOSX" / "._000.png").write_bytes(junk)
    train, test = mvtec.load("bottle", root=tmp_path, size=16)
    assert len(train) == 2 and test.names == ["good/000", "broken/000", "broken/001"]
    assert mvtec.categories_in(tmp_path) == ["bottle"]


def test_decompression_bomb_gets_a_clear_error(tmp_path, monkeypatch):
    import PIL.Image
    _fake_category(tmp_path)
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)   # 40x40 > 2 x 100
    with pytest.raises(ValueError, match="000.png is too large for PIL's safety limit.*"
                                         "MAX_IMAGE_PIXELS"):
        mvtec.load("bottle", root=tmp_path, size=16)
    import tifffile                                           # TIFFs read by tifffile too
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((40, 40), np.uint16))
    with pytest.raises(ValueError, match="big.tif is too large for PIL's safety limit"):
        adkit.data.files.read_image(tmp_path / "big.tif")


@pytest.mark.parametrize("bad", [2.5, "3", -1, 0, True, 1.0])
def test_bad_subset_sizes_get_a_clear_error(tmp_path, bad):
    _fake_category(tmp_path)
    for key in ("n_train", "n_test"):
        with pytest.raises((TypeError, ValueError),
                           match=f"{key} must be a positive integer or None"):
            mvtec.load("bottle", root=tmp_path, size=16, **{key: bad})
    assert len(mvtec.load("bottle", root=tmp_path, size=16, n_train=np.int64(1))[0]) == 1


def test_a_defect_folder_without_ground_truth_loads_with_unknown_masks(tmp_path):
    from adkit import metrics
    from adkit.models import ReferenceGaussian
    cat = _fake_category(tmp_path)
    _png(cat / "test" / "hole" / "000.png", np.full((40, 40, 3), 9, np.uint8))
    with pytest.warns(adkit.data.files.MissingMaskWarning,
                      match="1 of 4 test images \\(hole\\) have no ground-truth mask"):
        train, test = mvtec.load("bottle", root=tmp_path, size=16)
    assert test.names == ["good/000", "broken/000", "broken/001", "hole/000"]
    assert test.has_mask.tolist() == [True, True, True, False]
    assert test.labels.tolist() == [0, 1, 1, 1]        # still defective
    res = ReferenceGaussian().fit(train).predict(test)
    m = metrics.evaluate(res, test)
    assert 0 <= m["image_auroc"] <= 1
    assert np.isnan(m["pixel_auroc"]) and np.isnan(m["aupro"]) and "hole/000" in m["note"]
    known = metrics.evaluate(res[test.has_mask], test[test.has_mask])
    assert np.isfinite(known["pixel_auroc"]) and "note" not in known
    # the whole ground_truth folder missing: every defect image without mask
    import shutil
    shutil.rmtree(cat / "ground_truth")
    with pytest.warns(adkit.data.files.MissingMaskWarning, match="3 of 4"):
        _, test = mvtec.load("bottle", root=tmp_path, size=16)
    assert test.has_mask.tolist() == [True, False, False, False]
