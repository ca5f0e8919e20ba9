"""The MVTec AD dataset read from its official folder layout, and its download.

MVTec AD (Bergmann, Fauser, Sattlegger, Steger, CVPR 2019; IJCV 2021) holds 15
categories of industrial objects and textures: defect-free training images and test
images with pixel-precise ground truth. It is distributed by MVTec Software GmbH
under the Creative Commons Attribution-NonCommercial-ShareAlike 4.0 licence
(CC BY-NC-SA 4.0): https://www.mvtec.com/company/research/datasets/mvtec-ad

>>> from adkit.data import mvtec
>>> mvtec.download("~/data/mvtec", ["bottle"])                 # doctest: +SKIP
>>> train, test = mvtec.load("bottle", root="~/data/mvtec")     # doctest: +SKIP

or set ``ADKIT_MVTEC_ROOT=~/data/mvtec`` once and call ``adkit.data.load("mvtec/bottle")``.
The expected layout is :data:`LAYOUT`.
"""
from __future__ import annotations

import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np

from ..checks import check_positive_int, check_seed
from .split import Split

__all__ = ["CATEGORIES", "DEFAULT_URL", "CATEGORY_URLS", "LAYOUT", "ENV_VAR",
           "load", "download", "categories_in"]

#: the 15 categories of MVTec AD
CATEGORIES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather",
              "metal_nut", "pill", "screw", "tile", "toothbrush", "transistor", "wood",
              "zipper")

#: environment variable giving the default ``root`` of :func:`load`
ENV_VAR = "ADKIT_MVTEC_ROOT"

_SHARE = "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/"

#: the whole dataset in one archive (about 4.9 GB), as linked from the MVTec AD page
#: https://www.mvtec.com/company/research/datasets/mvtec-ad (downloads section).
DEFAULT_URL = _SHARE + "420938113-1629952094/mvtec_anomaly_detection.tar.xz"

#: one archive per category, as linked from the same page (the pill archive was
#: re-released under another share).
CATEGORY_URLS = {
    "bottle": _SHARE + "420937370-1629951468/bottle.tar.xz",
    "cable": _SHARE + "420937413-1629951498/cable.tar.xz",
    "capsule": _SHARE + "420937454-1629951595/capsule.tar.xz",
    "carpet": _SHARE + "420937484-1629951672/carpet.tar.xz",
    "grid": _SHARE + "420937487-1629951814/grid.tar.xz",
    "hazelnut": _SHARE + "420937545-1629951845/hazelnut.tar.xz",
    "leather": _SHARE + "420937607-1629951964/leather.tar.xz",
    "metal_nut": _SHARE + "420937637-1629952063/metal_nut.tar.xz",
    "pill": "https://www.mydrive.ch/shares/43421/11a215a5749fcfb75e331ddd5f8e43ee/"
            "download/420938129-1629953099/pill.tar.xz",
    "screw": _SHARE + "420938130-1629953152/screw.tar.xz",
    "tile": _SHARE + "420938133-1629953189/tile.tar.xz",
    "toothbrush": _SHARE + "420938134-1629953256/toothbrush.tar.xz",
    "transistor": _SHARE + "420938166-1629953277/transistor.tar.xz",
    "wood": _SHARE + "420938383-1629953354/wood.tar.xz",
    "zipper": _SHARE + "420938385-1629953449/zipper.tar.xz",
}

#: the folder layout :func:`load` reads (the official one)
LAYOUT = """\
<root>/
  <category>/                 e.g. bottle (one of the 15 categories, or your own)
    train/
      good/                   000.png, 001.png, ...   defect-free training images
    test/
      good/                   000.png, ...            defect-free test images (no mask)
      <defect>/               000.png, ...            e.g. broken_large, contamination
    ground_truth/
      <defect>/               000_mask.png, ...       one mask per defective test image
"""

_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class MVTecLayoutError(FileNotFoundError):
    """The folder given as MVTec AD root does not have the expected layout."""


def _layout_error(msg: str) -> MVTecLayoutError:
    return MVTecLayoutError(f"{msg}\nExpected the MVTec AD layout:\n{LAYOUT}"
                            "Download it with adkit.data.mvtec.download(root, [category]) or "
                            "from https://www.mvtec.com/company/research/datasets/mvtec-ad, "
                            f"then pass root= or set the environment variable {ENV_VAR}.")


def _resolve_root(root) -> Path:
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            raise _layout_error(
                f"no MVTec AD folder given: pass root='/path/to/mvtec_anomaly_detection' "
                f"or set the environment variable {ENV_VAR}.")
    return Path(os.path.expanduser(str(root)))


def categories_in(root) -> list[str]:
    """The category folders under ``root`` that have ``train/good`` and ``test``."""
    root = Path(os.path.expanduser(str(root)))
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if (p / "train" / "good").is_dir() and (p / "test").is_dir())


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in _IMAGE_EXT)


def _read(path: Path, size, mask: bool = False) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()
            if mask:
                im = im.convert("L")
            elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr16 = np.asarray(im, dtype=np.float32)
                im = Image.fromarray((arr16 / max(arr16.max(), 1) * 255).astype(np.uint8))
                im = im.convert("RGB")
            else:
                im = im.convert("RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]),
                               Image.NEAREST if mask else Image.BILINEAR)
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(
            f"could not read the image file {path}: {exc}. The file is corrupt or not an "
            "image; re-download or re-extract the dataset, or remove that file."
        ) from exc
    if mask:
        return arr > 127
    return arr.astype(np.float32) / 255.0


def _check_size(size):
    if size is None:
        return None
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return (check_positive_int(size[0], "size[0]", 8),
                check_positive_int(size[1], "size[1]", 8))
    s = check_positive_int(size, "size", 8)
    return (s, s)


def _subsample(n_total: int, n: int | None, rng, strata: np.ndarray | None = None,
               what: str = "images") -> np.ndarray:
    if n is None or n >= n_total:
        return np.arange(n_total)
    n = check_positive_int(n, what)
    if strata is None:
        return np.sort(rng.choice(n_total, n, replace=False))
    # keep the proportion of good / defective images
    picked = []
    groups = [np.flatnonzero(strata == v) for v in np.unique(strata)]
    quotas = [int(round(n * len(g) / n_total)) for g in groups]
    while sum(quotas) > n:
        quotas[int(np.argmax(quotas))] -= 1
    while sum(quotas) < n:
        quotas[int(np.argmin([q - len(g) for q, g in zip(quotas, groups)]))] += 1
    for g, q in zip(groups, quotas):
        picked.append(rng.choice(g, min(q, len(g)), replace=False))
    return np.sort(np.concatenate(picked))


def load(category: str, root=None, size=256, n_train: int | None = None,
         n_test: int | None = None, seed=0, progress: bool = True) -> tuple[Split, Split]:
    """Read one MVTec AD category from the official layout (:data:`LAYOUT`).

    Parameters
    ----------
    category : str
        A folder under ``root``: one of :data:`CATEGORIES` (``"bottle"``, ``"grid"``...)
        or your own data laid out the same way.
    root : str or Path, optional
        The folder holding the category folders (e.g. the extracted
        ``mvtec_anomaly_detection``). Defaults to the environment variable
        ``ADKIT_MVTEC_ROOT``.
    size : int, (int, int) or None, default 256
        Images are resized to ``size x size`` (bilinear, PIL) and masks with nearest
        neighbour; None keeps the native resolution (700 to 1024 px for MVTec AD).
    n_train, n_test : int or None
        Read only that many images, drawn at random (with ``seed``); the test subset
        keeps the proportion of good and defective images. None reads all.
    seed : int or numpy Generator, default 0
    progress : bool, default True
        Show a progress bar while reading.

    Returns
    -------
    train, test : Split
        Grayscale categories (grid, screw, zipper) are converted to RGB. Test images
        are ordered ``good`` first, then by defect folder; ``names`` are
        ``"<defect>/<file stem>"`` and ``defect_types`` the folder names.
    """
    root = _resolve_root(root)
    if not root.is_dir():
        raise _layout_error(f"the MVTec AD root folder {root} does not exist.")
    if not isinstance(category, str) or not category:
        raise TypeError(f"category must be a folder name such as 'bottle', got {category!r}.")
    base = root / category
    if not base.is_dir():
        found = categories_in(root)
        raise _layout_error(
            f"there is no category folder {base}. "
            + (f"Categories found under {root}: {found}." if found else
               f"No category folder found under {root} at all (MVTec AD categories are "
               f"{list(CATEGORIES)})."))
    size = _check_size(size)
    rng = check_seed(seed)
    train_dir, test_dir, gt_dir = base / "train" / "good", base / "test", base / "ground_truth"
    if not train_dir.is_dir():
        raise _layout_error(f"the training folder {train_dir} is missing.")
    train_files = _images_in(train_dir)
    if not train_files:
        raise _layout_error(f"the training folder {train_dir} holds no image (.png) file.")
    if not test_dir.is_dir():
        raise _layout_error(f"the test folder {test_dir} is missing.")
    defects = sorted(p.name for p in test_dir.iterdir() if p.is_dir())
    if not defects:
        raise _layout_error(f"the test folder {test_dir} has no sub-folder (good/ and one "
                            "folder per defect type).")
    defects = (["good"] if "good" in defects else []) + [d for d in defects if d != "good"]
    test_files: list[tuple[str, Path, Path | None]] = []
    for d in defects:
        files = _images_in(test_dir / d)
        for f in files:
            mask = None
            if d != "good":
                mask = gt_dir / d / f"{f.stem}_mask.png"
                if not mask.is_file():
                    alt = sorted((gt_dir / d).glob(f"{f.stem}_mask.*")) \
                        if (gt_dir / d).is_dir() else []
                    if not alt:
                        raise _layout_error(
                            f"the ground-truth mask {mask} of the defective test image {f} "
                            "is missing.")
                    mask = alt[0]
            test_files.append((d, f, mask))
    if not test_files:
        raise _layout_error(f"the test folders under {test_dir} hold no image file.")

    labels_all = np.array([d != "good" for d, _, _ in test_files], np.int64)
    sel_train = _subsample(len(train_files), n_train, rng, what="n_train")
    sel_test = _subsample(len(test_files), n_test, rng, labels_all, what="n_test")

    from tqdm.auto import tqdm
    bar = tqdm(total=len(sel_train) + len(sel_test), desc=f"reading mvtec/{category}",
               disable=not progress, leave=False)
    try:
        train_imgs = []
        for i in sel_train:
            train_imgs.append(_read(train_files[i], size))
            bar.update()
        native = train_imgs[0].shape[:2]
        imgs, masks, types, names = [], [], [], []
        for i in sel_test:
            d, f, m = test_files[i]
            im = _read(f, size)
            imgs.append(im)
            if m is None:
                masks.append(np.zeros(im.shape[:2], bool))
            else:
                mk = _read(m, size, mask=True)
                if mk.shape != im.shape[:2]:
                    raise ValueError(
                        f"the mask {m} is {mk.shape[1]}x{mk.shape[0]} but its image {f} is "
                        f"{im.shape[1]}x{im.shape[0]}: a mask must match its image.")
                masks.append(mk)
            types.append(d)
            names.append(f"{d}/{f.stem}")
            bar.update()
    finally:
        bar.close()
    shapes = {a.shape for a in train_imgs + imgs}
    if len(shapes) > 1:
        raise ValueError(
            f"the images of {base} have different sizes {sorted(shapes)[:2]}...: pass "
            f"size= (e.g. size=256) to resize them all (native size of the first: {native}).")
    train = Split(np.stack(train_imgs), None, np.zeros(len(train_imgs), np.int64),
                  ["good"] * len(train_imgs), [f"good/{train_files[i].stem}" for i in sel_train])
    labels = np.array([t != "good" for t in types], np.int64)
    test = Split(np.stack(imgs), np.stack(masks), labels, types, names)
    return train, test


# -- download --------------------------------------------------------------------------

def _present(root: Path, category: str) -> bool:
    base = root / category
    try:
        return (any(_images_in(base / "train" / "good")) and (base / "test").is_dir()
                and any(p.is_dir() for p in (base / "test").iterdir()))
    except FileNotFoundError:
        return False


def _fetch(url: str, dest: Path, progress: bool) -> None:
    from tqdm.auto import tqdm
    try:
        resp = urllib.request.urlopen(url, timeout=60)
    except urllib.error.HTTPError as exc:
        raise ConnectionError(
            f"downloading {url} failed: HTTP {exc.code} {exc.reason}. Download MVTec AD "
            "by hand from https://www.mvtec.com/company/research/datasets/mvtec-ad, extract "
            f"it and pass root= (or set {ENV_VAR}).") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectionError(
            f"could not reach {url} ({getattr(exc, 'reason', exc)}). Check the network, or "
            "download MVTec AD by hand from "
            "https://www.mvtec.com/company/research/datasets/mvtec-ad, extract it and pass "
            f"root= (or set {ENV_VAR}).") from exc
    with resp:
        total = resp.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        name = PurePosixPath(urllib.request.urlparse(url).path).name or "archive"
        with open(dest, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                           unit_divisor=1024, desc=name,
                                           disable=not progress) as bar:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and dest.stat().st_size != total:
        raise ConnectionError(f"the download of {url} stopped early ({dest.stat().st_size} "
                              f"of {total} bytes): try again.")


def _safe_members(tar: tarfile.TarFile, url: str) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        name = m.name.replace("\\", "/")
        p = PurePosixPath(name)
        if name.startswith("/") or (p.parts and ":" in p.parts[0]):
            raise ValueError(f"the archive from {url} holds a member with an absolute path "
                             f"({m.name!r}); refusing to extract it.")
        if ".." in p.parts:
            raise ValueError(f"the archive from {url} holds a member leaving the target "
                             f"folder ({m.name!r}); refusing to extract it.")
        if not (m.isfile() or m.isdir()):
            raise ValueError(f"the archive from {url} holds a link or special file "
                             f"({m.name!r}); MVTec AD has only files and folders: refusing "
                             "to extract it.")
    return members


def download(root, categories: Sequence[str] | str | None = None, url: str = DEFAULT_URL,
             progress: bool = True) -> Path:
    """Download and extract MVTec AD (or some of its categories) into ``root``.

    Please read and respect the licence first: CC BY-NC-SA 4.0 (non-commercial use,
    attribution, share alike); see https://www.mvtec.com/company/research/datasets/mvtec-ad

    Parameters
    ----------
    root : str or Path
        Where the category folders go (created if needed); then
        ``load(category, root=root)``.
    categories : list of str, str or None
        None: the whole dataset (one 4.9 GB archive, :data:`DEFAULT_URL`). A list: only
        those categories; with the default ``url`` each comes from its own archive
        (:data:`CATEGORY_URLS`, 0.1 to 1.2 GB each).
    url : str
        Another source of the archive(s) (a mirror, a local server). It may contain
        ``{category}``, replaced by each category name (one archive per category);
        otherwise it is one archive holding the requested categories.
    progress : bool
        Show a download progress bar.

    Categories already present under ``root`` are skipped. An archive is streamed to
    a temporary file in ``root``, checked to be a tar archive (``.tar``, ``.tar.gz``,
    ``.tar.xz``), checked member by member (no absolute path, no ``..``, no link), then
    extracted and deleted.

    Returns
    -------
    Path
        ``root``.
    """
    if root is None:
        raise TypeError("root must be the folder to download into, e.g. '~/data/mvtec'.")
    root = Path(os.path.expanduser(str(root)))
    if isinstance(categories, str):
        categories = [categories]
    wanted = list(CATEGORIES) if categories is None else list(categories)
    unknown = [c for c in wanted if c not in CATEGORIES]
    if url == DEFAULT_URL and unknown:
        raise ValueError(f"unknown MVTec AD categor{'y' if len(unknown) == 1 else 'ies'} "
                         f"{unknown}: choose among {list(CATEGORIES)}.")
    missing = [c for c in wanted if not _present(root, c)]
    if not missing:
        return root
    root.mkdir(parents=True, exist_ok=True)

    if url == DEFAULT_URL and categories is not None:
        jobs = [(CATEGORY_URLS[c], [c]) for c in missing]
    elif "{category}" in url:
        jobs = [(url.format(category=c), [c]) for c in missing]
    else:
        jobs = [(url, missing)]
    for src, expect in jobs:
        _download_archive(src, root, progress)
        still = [c for c in expect if not _present(root, c)]
        if still:
            raise _layout_error(
                f"the archive {src} was extracted into {root} but did not provide the "
                f"categor{'y' if len(still) == 1 else 'ies'} {still}.")
    return root


def _download_archive(url: str, root: Path, progress: bool) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".adkit-download-", suffix=".part", dir=root)
    os.close(fd)
    tmp = Path(tmp)
    try:
        _fetch(url, tmp, progress)
        if not tarfile.is_tarfile(tmp):
            raise ValueError(f"the file downloaded from {url} is not a tar archive "
                             "(expected .tar.xz): check the URL.")
        with tarfile.open(tmp, "r:*") as tar:
            members = _safe_members(tar, url)
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(root, members=members, **kw)
    finally:
        tmp.unlink(missing_ok=True)

