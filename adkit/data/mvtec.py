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

import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np

from ..checks import check_in_range, check_seed
from .files import (IMAGE_EXTENSIONS, Entry, MissingMaskWarning, check_count, check_size,
                    find_mask, index_by_stem, list_folders, list_images, read_split,
                    subsample, warn_missing_masks)
from .split import Split

__all__ = ["CATEGORIES", "DEFAULT_URL", "CATEGORY_URLS", "SHA256", "LAYOUT", "ENV_VAR",
           "MVTecLayoutError", "DownloadError", "MissingMaskWarning", "load", "download",
           "categories_in"]

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
    return [p.name for p in list_folders(root)
            if (p / "train" / "good").is_dir() and (p / "test").is_dir()]


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
        neighbour; None keeps the native resolution (700 to 1024 px for MVTec AD; all
        images must then have one size).
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

    Notes
    -----
    Files are read by the rules of :mod:`adkit.data.files`: 16-bit files scaled by
    65535, float TIFFs as they are (in [0, 1]), any non-zero mask pixel is defect, a
    mask must have its image's size, hidden files (``._000.png``) are skipped. A
    defect folder without ``ground_truth/<defect>/`` (or with an empty one) loads with
    ``test.has_mask`` False for its images and a :class:`MissingMaskWarning`; one
    missing mask inside an existing ``ground_truth/<defect>/`` is an error.
    """
    n_train = check_count(n_train, "n_train")
    n_test = check_count(n_test, "n_test")
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
    size = check_size(size)
    rng = check_seed(seed)
    train_dir, test_dir, gt_dir = base / "train" / "good", base / "test", base / "ground_truth"
    if not train_dir.is_dir():
        raise _layout_error(f"the training folder {train_dir} is missing.")
    train_files = list_images(train_dir)
    if not train_files:
        raise _layout_error(f"the training folder {train_dir} holds no image file "
                            f"({', '.join(IMAGE_EXTENSIONS)}).")
    if not test_dir.is_dir():
        raise _layout_error(f"the test folder {test_dir} is missing.")
    defects = [p.name for p in list_folders(test_dir)]
    if not defects:
        raise _layout_error(f"the test folder {test_dir} has no sub-folder (good/ and one "
                            "folder per defect type).")
    defects = (["good"] if "good" in defects else []) + [d for d in defects if d != "good"]
    entries: list[Entry] = []
    for d in defects:
        files = list_images(test_dir / d)
        if d == "good":
            entries += [Entry(f, 0, d, f"{d}/{f.stem}") for f in files]
            continue
        folder = gt_dir / d
        mask_files = list_images(folder) if folder.is_dir() else []
        by_stem = index_by_stem(mask_files)
        for f in files:
            if not mask_files:      # no ground truth for this defect type: unknown masks
                entries.append(Entry(f, 1, d, f"{d}/{f.stem}", None, has_mask=False))
                continue
            mask = find_mask(f, by_stem, folder)
            if mask is None:
                raise _layout_error(
                    f"the ground-truth mask {folder / (f.stem + '_mask.png')} of the "
                    f"defective test image {f} is missing.")
            entries.append(Entry(f, 1, d, f"{d}/{f.stem}", mask))
    if not entries:
        raise _layout_error(f"the test folders under {test_dir} hold no image file.")

    labels_all = np.array([e.label for e in entries], np.int64)
    sel_train = subsample(len(train_files), n_train, rng)
    sel_test = subsample(len(entries), n_test, rng, labels_all)
    train = read_split([Entry(train_files[i], 0, "good", f"good/{train_files[i].stem}")
                        for i in sel_train], size, progress, f"reading mvtec/{category} train")
    test = read_split([entries[i] for i in sel_test], size, progress,
                      f"reading mvtec/{category} test",
                      shape=train.size if size is None else None)
    warn_missing_masks(test, f"no folder with masks under {gt_dir}")
    return train, test


# -- download --------------------------------------------------------------------------

#: SHA-256 of archives, by URL, checked after each download. MVTec publishes no
#: checksums beside its download links (as far as adkit knows), so this table is empty;
#: pass ``sha256=`` to :func:`download` to check an archive against a value you trust.
SHA256: dict[str, str] = {}

_HAND = ("or download MVTec AD by hand from "
         "https://www.mvtec.com/company/research/datasets/mvtec-ad, extract it and pass "
         f"root= (or set {ENV_VAR}).")


class DownloadError(ConnectionError):
    """A download failed (unreachable, HTTP error, stalled, too slow, truncated, wrong
    checksum); the message names the URL and what to do."""


def _present(root: Path, category: str) -> bool:
    base = root / category
    try:
        return (any(list_images(base / "train" / "good")) and (base / "test").is_dir()
                and any(list_folders(base / "test")))
    except (FileNotFoundError, NotADirectoryError):
        return False


def _part_paths(url: str, root: Path) -> tuple[Path, Path]:
    """The resumable ``.part`` file of ``url`` in ``root`` and its JSON side file."""
    name = PurePosixPath(urllib.request.urlparse(url).path).name or "archive"
    tag = hashlib.sha1(url.encode()).hexdigest()[:10]
    part = root / f".adkit-{name}-{tag}.part"
    return part, part.with_name(part.name + ".json")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``"bytes 100-199/1000"`` → (100, 1000); ``"bytes */1000"`` → (None, 1000)."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _fetch(url: str, part: Path, meta_path: Path, progress: bool, deadline_at: float,
           deadline: float, stall_timeout: float) -> None:
    """Download ``url`` into ``part``, continuing a previous ``.part`` of the same URL
    (HTTP Range, with If-Range so a changed file restarts from zero)."""
    from tqdm.auto import tqdm
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError):
        meta = {}
    have = part.stat().st_size if part.is_file() and meta.get("url") == url else 0
    total = meta.get("length") if have else None
    if have and total == have:
        return                                   # complete from an earlier call
    headers = {"User-Agent": "adkit (python urllib)"}
    if have:
        headers["Range"] = f"bytes={have}-"
        etag = meta.get("etag")
        validator = etag if etag and not etag.startswith("W/") else meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator

    def resume(got: int) -> str:
        return (f"{part} keeps the {got} bytes received: call download() again to "
                "continue from there, ")
    left = deadline_at - time.monotonic()
    if left <= 0:
        raise DownloadError(f"the download of {url} did not finish within deadline="
                            f"{deadline:g} s. " + resume(have)
                            + "or pass a larger deadline=.")
    timeout = min(stall_timeout, left)
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                      timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:             # the part may already be complete
            _, whole = _content_range(exc.headers.get("Content-Range"))
            if whole == have:
                return
            part.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            return _fetch(url, part, meta_path, progress, deadline_at, deadline,
                          stall_timeout)
        raise DownloadError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}. "
                            "Check the URL, " + _HAND) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"could not reach {url} ({getattr(exc, 'reason', exc)}). "
                            "Check the network, " + _HAND) from exc
    with resp:
        if resp.status == 206 and have:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:
                raise DownloadError(
                    f"the server of {url} answered a resume request with the wrong part "
                    f"({resp.headers.get('Content-Range')!r} for bytes={have}-): delete "
                    f"{part} and call download() again.")
            mode = "ab"
        else:                                    # a full answer: start from zero
            have, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            meta = {"url": url, "length": total, "etag": resp.headers.get("ETag"),
                    "last_modified": resp.headers.get("Last-Modified")}
            meta_path.write_text(json.dumps(meta))
        name = PurePosixPath(urllib.request.urlparse(url).path).name or "archive"
        with open(part, mode) as out, tqdm(total=total, initial=have, unit="B",
                                           unit_scale=True, unit_divisor=1024, desc=name,
                                           disable=not progress) as bar:
            while True:
                try:
                    chunk = resp.read1(1 << 16)
                except TimeoutError as exc:      # socket.timeout: one read waited too long
                    out.flush()
                    if time.monotonic() >= deadline_at:
                        raise DownloadError(
                            f"the download of {url} did not finish within deadline="
                            f"{deadline:g} s. " + resume(out.tell())
                            + "or pass a larger deadline=.") from exc
                    raise DownloadError(
                        f"the download of {url} stalled: no data for stall_timeout="
                        f"{stall_timeout:g} s. " + resume(out.tell())
                        + _HAND) from exc
                except (OSError, http.client.HTTPException) as exc:
                    out.flush()
                    raise DownloadError(
                        f"the connection to {url} broke ({exc}). "
                        + resume(out.tell()) + _HAND) from exc
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
                if time.monotonic() >= deadline_at and (total is None
                                                        or out.tell() < total):
                    raise DownloadError(
                        f"the download of {url} did not finish within deadline="
                        f"{deadline:g} s. " + resume(out.tell())
                        + "or pass a larger deadline=.")
            got = out.tell()
    if total is not None and got != total:
        raise DownloadError(
            f"the download of {url} stopped early: {got} of {total} bytes (the "
            "connection was closed). " + resume(got) + _HAND)
    if total is None:
        meta["length"] = got
        meta_path.write_text(json.dumps(meta))


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def _move_into(src: Path, dst: Path) -> None:
    """Move the folder ``src`` to ``dst``; into an existing ``dst``, file by file
    (files of the archive replace those of ``dst``; other files of ``dst`` stay)."""
    if not dst.exists():
        os.replace(src, dst)
        return
    for f in sorted(src.rglob("*")):
        if f.is_file():
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)


def _extract(archive: Path, root: Path, wanted: list[str], url: str, force: bool) -> None:
    """Extract the ``wanted`` category folders of ``archive`` (and its top-level files
    that ``root`` does not have yet) into ``root``; nothing else is touched."""
    if not tarfile.is_tarfile(archive):
        raise ValueError(f"the file downloaded from {url} is not a tar archive "
                         "(expected .tar.xz): check the URL.")
    with tarfile.open(archive, "r:*") as tar:
        members = _safe_members(tar, url)
        tops = {PurePosixPath(m.name.replace("\\", "/")).parts[0]
                for m in members if PurePosixPath(m.name).parts}
        # one wrapping folder (e.g. mvtec_anomaly_detection/) that is no category
        prefix = next(iter(tops)) if len(tops) == 1 and not tops & set(wanted) else ""
        chosen, top_files = [], []
        for m in members:
            parts = PurePosixPath(m.name.replace("\\", "/")).parts
            parts = parts[1:] if prefix and parts and parts[0] == prefix else parts
            if parts and parts[0] in wanted:
                chosen.append(m)
            elif len(parts) == 1 and m.isfile():
                chosen.append(m)
                top_files.append(parts[0])
        staging = Path(tempfile.mkdtemp(prefix=".adkit-extract-", dir=root))
        try:
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=chosen, **kw)
            base = staging / prefix if prefix else staging
            for c in wanted:
                if (base / c).is_dir():
                    _move_into(base / c, root / c)
            for name in top_files:              # e.g. license.txt, readme.txt
                if force or not (root / name).exists():
                    os.replace(base / name, root / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _check_sha256(value, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value.strip()):
        raise ValueError(f"sha256 for {what} must be 64 hexadecimal digits, got {value!r}.")
    return value.strip().lower()


def download(root, categories: Sequence[str] | str | None = None, url: str = DEFAULT_URL,
             progress: bool = True, *, force: bool = False, sha256=None,
             deadline: float = 4 * 3600, stall_timeout: float = 60) -> Path:
    """Download and extract MVTec AD (or some of its categories) into ``root``.

    Please read and respect the licence first: CC BY-NC-SA 4.0 (non-commercial use,
    attribution, share alike); see https://www.mvtec.com/company/research/datasets/mvtec-ad

    Categories already present under ``root`` (with ``train/good`` images and a
    ``test`` folder) are skipped and never overwritten unless ``force=True``; from an
    archive holding more categories only the requested missing ones are extracted.
    An archive is downloaded to a hidden ``.adkit-<name>-<hash>.part`` file in
    ``root``; an interrupted, stalled or too slow download keeps it, and the next call
    for the same URL continues it (HTTP ``Range``; a server that ignores it sends the
    whole file again). The size is checked against ``Content-Length``, the checksum
    where one is known; then the file is checked to be a tar archive (``.tar``,
    ``.tar.gz``, ``.tar.xz``) member by member (no absolute path, no ``..``, no link),
    extracted into a hidden folder in ``root``, the categories moved into place (so a
    half-extracted category never looks present) and the ``.part`` file deleted.

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
    force : bool, default False
        Download and extract categories already present under ``root`` too: the
        archive's files replace those on disk (other files in the folder stay).
    sha256 : str or dict, optional
        The expected SHA-256 (hex) of the archive (one archive), or
        ``{url or category: sha256}``. Defaults to :data:`SHA256` (empty: no official
        checksum is known), else only the size is checked.
    deadline : float, default 4 hours
        Seconds for all the downloads of this call; when it passes, the error says how
        much was received, and a new call continues from there.
    stall_timeout : float, default 60
        Seconds one read may wait for data (also the connection timeout).

    Returns
    -------
    Path
        ``root``.

    Raises
    ------
    DownloadError
        (a ``ConnectionError``) the server cannot be reached, answers an HTTP error,
        stalls, the deadline passes, the transfer is truncated or the checksum differs.
    ValueError
        the file is not a safe tar archive.
    """
    if root is None:
        raise TypeError("root must be the folder to download into, e.g. '~/data/mvtec'.")
    root = Path(os.path.expanduser(str(root)))
    if isinstance(categories, str):
        categories = [categories]
    wanted = list(CATEGORIES) if categories is None else list(categories)
    bad = [c for c in wanted if not isinstance(c, str) or not c or "/" in c or c.startswith(".")]
    if bad:
        raise TypeError(f"categories must be folder names such as 'bottle', got {bad}.")
    unknown = [c for c in wanted if c not in CATEGORIES]
    if url == DEFAULT_URL and unknown:
        raise ValueError(f"unknown MVTec AD categor{'y' if len(unknown) == 1 else 'ies'} "
                         f"{unknown}: choose among {list(CATEGORIES)}.")
    check_in_range(deadline, "deadline", 0, None, low_inclusive=False)
    check_in_range(stall_timeout, "stall_timeout", 0, None, low_inclusive=False)
    todo = wanted if force else [c for c in wanted if not _present(root, c)]
    if not todo:
        return root
    root.mkdir(parents=True, exist_ok=True)

    if url == DEFAULT_URL and categories is not None:
        jobs = [(CATEGORY_URLS[c], [c]) for c in todo]
    elif "{category}" in url:
        jobs = [(url.format(category=c), [c]) for c in todo]
    else:
        jobs = [(url, todo)]
    sums = dict(SHA256)
    if isinstance(sha256, dict):
        for key, value in sha256.items():
            for src, expect in jobs:
                if key == src or key in expect:
                    sums[src] = value
    elif sha256 is not None:
        if len(jobs) > 1:
            raise ValueError(f"sha256= is one checksum but {len(jobs)} archives are to be "
                             "downloaded: give a dict {category or url: sha256}.")
        sums[jobs[0][0]] = sha256
    sums = {k: _check_sha256(v, k) for k, v in sums.items()}
    deadline_at = time.monotonic() + float(deadline)
    for src, expect in jobs:
        part, meta = _part_paths(src, root)
        _fetch(src, part, meta, progress, deadline_at, float(deadline), float(stall_timeout))
        try:
            if src in sums:
                got = _sha256_of(part)
                if got != sums[src]:
                    raise DownloadError(
                        f"the file downloaded from {src} has SHA-256 {got}, expected "
                        f"{sums[src]}: it is corrupt or not the expected archive. It was "
                        "deleted; call download() again, " + _HAND)
            _extract(part, root, expect, src, force)
        except (ValueError, DownloadError):
            # a complete file that is wrong: resuming it cannot help
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            raise
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        still = [c for c in expect if not _present(root, c)]
        if still:
            raise _layout_error(
                f"the archive {src} was extracted into {root} but did not provide the "
                f"categor{'y' if len(still) == 1 else 'ies'} {still}.")
    return root
