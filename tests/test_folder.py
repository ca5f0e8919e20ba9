"""adkit.data.load("folder", ...): a user's own folders, with or without masks."""
import json
import warnings

import numpy as np
import pytest
from PIL import Image

import adkit.data
from adkit import metrics
from adkit.data import folder
from adkit.data.files import MissingMaskWarning
from adkit.models import ReferenceGaussian


def _save(path, array, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)


def _gray(rng, h, w, defect=False):
    """A smooth gray tile with noise; a dark blob where defective."""
    y, x = np.mgrid[:h, :w]
    img = 120 + 30 * np.sin(x / 7.0) + rng.normal(0, 4, (h, w))
    if defect:
        img[h // 3:h // 3 + h // 4, w // 3:w // 3 + w // 4] = 20
    return np.clip(img, 0, 255).astype(np.uint8)


def _tiles(root, sizes=((60, 80), (64, 64), (70, 90))):
    """A magnetic-tile style set: grayscale JPEGs of varying sizes in root/good and
    root/<type>; masks (0/255 PNG, same stem) in root/masks/crack only."""
    rng = np.random.default_rng(0)
    for i in range(10):
        h, w = sizes[i % len(sizes)]
        _save(root / "good" / f"n{i:02d}.jpg", _gray(rng, h, w), quality=95)
    for i in range(3):
        h, w = sizes[i % len(sizes)]
        _save(root / "crack" / f"c{i}.jpg", _gray(rng, h, w, True), quality=95)
        m = np.zeros((h, w), np.uint8)
        m[h // 3:h // 3 + h // 4, w // 3:w // 3 + w // 4] = 255
        _save(root / "masks" / "crack" / f"c{i}.png", m)
    for i in range(2):
        h, w = sizes[i % len(sizes)]
        _save(root / "blowhole" / f"b{i}.jpg", _gray(rng, h, w, True), quality=95)
    return root


def test_grayscale_jpegs_of_varying_sizes_need_size(tmp_path):
    root = _tiles(tmp_path / "tiles")
    with pytest.raises(ValueError, match=r"the image .*n0\d.jpg is \d+x\d+ pixels but the "
                                         r"image .*n0\d.jpg is \d+x\d+.*size="):
        folder.load(root)
    with pytest.warns(MissingMaskWarning, match=r"2 of 7 test images \(blowhole\) have no "
                                                r"ground-truth mask \(no mask file by stem in "
                                                r"\['.*tiles.masks'\]\)"):
        train, test = folder.load(root, size=48)
    assert train.images.shape == (8, 48, 48, 3) and train.images.dtype == np.float32
    assert np.array_equal(train.images[..., 0], train.images[..., 2])   # gray -> RGB
    # test: 20 % of the 10 normal images, then crack, then blowhole (given order: sorted)
    assert test.defect_types == ["good"] * 2 + ["blowhole"] * 2 + ["crack"] * 3
    assert test.labels.tolist() == [0, 0, 1, 1, 1, 1, 1]
    assert test.has_mask.tolist() == [True, True, False, False, True, True, True]
    assert test.masks[4:].any(axis=(1, 2)).all() and not test.masks[:4].any()
    assert set(train.names).isdisjoint(test.names[:2])
    assert all(n.startswith("good/n") for n in train.names)


def test_seeded_split_and_the_name_scheme(tmp_path):
    root = _tiles(tmp_path / "tiles")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingMaskWarning)
        a = folder.load(root, size=32, seed=1)
        b = adkit.data.load("folder", root=root, size=32, seed=1)
        c = adkit.data.load(f"folder/{root}", size=32, seed=1)
        d = folder.load(root, size=32, seed=2, test_fraction=0.5)
    assert a[1].names == b[1].names == c[1].names and a[0].names == c[0].names
    assert np.array_equal(a[1].images, c[1].images)
    assert len(d[0]) == 5 and d[1].defect_types.count("good") == 5
    with pytest.raises(ValueError, match="names the folder already"):
        adkit.data.load(f"folder/{root}", root=root)


def test_detector_fits_and_pixel_metrics_are_reported_missing(tmp_path):
    root = _tiles(tmp_path / "tiles")
    with pytest.warns(MissingMaskWarning):
        train, test = adkit.data.load("folder", root=root, size=48)
    res = ReferenceGaussian().fit(train).predict(test)
    assert res.maps.shape == (7, 48, 48)
    m = metrics.evaluate(res, test)
    assert m["image_auroc"] > 0.9                       # the dark blobs are found
    assert np.isnan(m["pixel_auroc"]) and np.isnan(m["aupro"])
    assert "2 of 7 test images have no ground-truth mask" in m["note"]
    assert "blowhole/b0" in m["note"]
    # on the images whose masks are known, the pixel metrics exist
    k = metrics.evaluate(res[test.has_mask], test[test.has_mask])
    assert k["pixel_auroc"] > 0.9 and "note" not in k


def test_bench_quality_row_on_a_folder(tmp_path, capsys):
    from adkit.cli import main
    root = _tiles(tmp_path / "tiles")
    rc = main(["bench", "--data", f"folder/{root}", "--methods", "reference", "--size", "32",
               "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rc == 0, rows
    row = rows[0]
    assert row["n_fit"] == 8 and row["n_pred"] == 7 and row["image_auroc"] > 0.9
    assert np.isnan(row["pixel_auroc"]) and "no ground-truth mask" in row["note"]


def test_explicit_folders_masks_beside_images_and_bit_depths(tmp_path):
    """normal_dir, abnormal_dir as a dict, mask_dir = the image folder itself (PNG masks
    beside JPEG images, as in the magnetic-tile set, told apart by ``extensions``),
    16-bit and float TIFF normal images, 0/1 masks, AppleDouble files."""
    import tifffile
    rng = np.random.default_rng(1)
    normal, imgs = tmp_path / "ok", tmp_path / "MT_Crack" / "Imgs"
    normal.mkdir()
    raw = [np.full((24, 24), 1000 * (i + 1) + 1, np.uint16) for i in range(4)]
    for i, r in enumerate(raw):
        tifffile.imwrite(normal / f"{i}.tif", r)
    ramp = np.linspace(0, 1, 24 * 24, dtype=np.float32).reshape(24, 24)
    Image.fromarray(ramp).save(normal / "4.tif")
    (normal / "._4.tif").write_bytes(b"\x00\x05\x16\x07junk")
    for i in range(2):
        _save(imgs / f"exp{i}.jpg", _gray(rng, 24, 24, True))
        m = np.zeros((24, 24), np.uint8)
        m[8:14, 8:14] = 1                              # a 0/1 mask
        _save(imgs / f"exp{i}.png", m)
    (imgs / "._exp0.jpg").write_bytes(b"\x00\x05\x16\x07junk")
    with pytest.raises(ValueError, match="exp0.png is read as an image and as the mask of "
                                         ".*exp0.jpg.*extensions="):
        folder.load(normal_dir=normal, abnormal_dir={"crack": imgs}, mask_dir=imgs)
    train, test = folder.load(normal_dir=normal, abnormal_dir={"crack": imgs}, mask_dir=imgs,
                              extensions=[".jpg", ".tif"], test_fraction=0.4, seed=0)
    assert len(train) == 3 and test.defect_types == ["good", "good", "crack", "crack"]
    assert test.names[2:] == ["crack/exp0", "crack/exp1"]
    assert test.has_mask.all() and test.masks[2:].sum(axis=(1, 2)).tolist() == [36, 36]
    both = {n: im for s in (train, test) for n, im in zip(s.names, s.images)}
    for i, r in enumerate(raw):
        assert np.allclose(both[f"good/{i}"], r[0, 0] / 65535, atol=1e-7)
    assert np.array_equal(both["good/4"][..., 1], ramp)


def test_errors_name_the_path(tmp_path):
    root = _tiles(tmp_path / "tiles")
    with pytest.raises(FileNotFoundError, match="normal images .*tiles.nothing does not exist"):
        folder.load(root, normal_dir="nothing", size=32)
    with pytest.raises(FileNotFoundError, match="dataset folder .*nowhere does not exist"):
        adkit.data.load("folder", root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no mask in .*other'\] matches an abnormal image"):
        (tmp_path / "other").mkdir()
        _save(tmp_path / "other" / "zzz.png", np.zeros((8, 8), np.uint8))
        folder.load(root, mask_dir=tmp_path / "other", size=32)
    _save(root / "masks" / "crack" / "c1.png", np.full((5, 5), 255, np.uint8))
    with pytest.raises(ValueError, match="the mask .*c1.png is 5x5 pixels but its image is"):
        folder.load(root, size=32)
    with pytest.raises(ValueError, match="test_fraction must be in"):
        folder.load(root, test_fraction=1.0, size=32)
    with pytest.raises(TypeError, match="n_test must be a positive integer or None"):
        folder.load(root, n_test=2.0, size=32)
    with pytest.raises(ValueError, match="two abnormal folders are named 'Imgs'"):
        folder.load(root, abnormal_dir=[tmp_path / "a" / "Imgs", tmp_path / "b" / "Imgs"])
