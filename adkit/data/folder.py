"""A dataset from your own folders: normal images, abnormal ones, optional masks.

The layout is free (in the spirit of anomalib's ``Folder`` datamodule): one folder of
normal (defect-free) images, one or more folders of abnormal images, and optionally
mask files matched to the abnormal images by file stem. A seeded part of the normal
images is held out for the test split.

>>> from adkit import data
>>> train, test = data.load("folder", root="~/data/tiles", normal_dir="good",
...                         abnormal_dir=["crack", "blowhole"], mask_dir="masks",
...                         size=256)                                 # doctest: +SKIP

With only ``root``, the name scheme :data:`LAYOUT` is read: ``root/good`` holds the
normal images, every other sub-folder of ``root`` one type of abnormal images, and
``root/masks`` (optional) their masks. ``data.load("folder/<root>")`` is the same as
``data.load("folder", root="<root>")``, so the command line reads it too::

    python -m adkit bench --data folder/$HOME/data/tiles --size 256 --methods knn

Files are read by the rules of :mod:`adkit.data.files` (8/16-bit, gray → RGB,
float TIFF in [0, 1], any non-zero mask pixel is defect, a mask has its image's
size, hidden files skipped). Abnormal images without a mask load with
``test.has_mask`` False and a :class:`~adkit.data.files.MissingMaskWarning`: image
metrics work, pixel metrics are reported missing (:mod:`adkit.data.split`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..checks import check_in_range, check_seed
from .files import (Entry, ImageFileError, check_count, check_size, find_mask, index_by_stem,
                    list_folders, list_images, read_split, subsample, warn_missing_masks)
from .split import Split

__all__ = ["LAYOUT", "load"]

#: the name scheme read when only ``root`` is given
LAYOUT = """\
<root>/
  good/                 normal images (a seeded test_fraction of them go to the test split)
  <type>/               abnormal images, one folder per type (e.g. crack/, blowhole/)
  masks/                optional: masks matched by file stem, <stem>.png or <stem>_mask.png,
    <type>/             either in one sub-folder per type or all directly in masks/
"""

_DEFAULT_MASKS = "masks"


def _path(p, root: Path | None) -> Path:
    if not isinstance(p, (str, os.PathLike)):
        raise TypeError(f"a folder must be a path (str or Path), got {p!r}.")
    q = Path(os.path.expanduser(str(p)))
    return root / q if root is not None and not q.is_absolute() else q


def _same(a: Path, b: Path | None) -> bool:
    return b is not None and a.resolve() == b.resolve()


def _abnormal_folders(abnormal_dir, root, skip: list[Path]) -> dict[str, Path]:
    """``{defect type: folder}`` from ``abnormal_dir`` (None, a path, a list, a dict)."""
    if abnormal_dir is None:
        if root is None:
            return {}
        found = [p for p in list_folders(root) if not any(_same(p, s) for s in skip)]
        return {p.name: p for p in found if list_images(p)}
    if isinstance(abnormal_dir, dict):
        out = {}
        for kind, p in abnormal_dir.items():
            if not isinstance(kind, str) or not kind:
                raise TypeError(f"the keys of abnormal_dir are defect type names, got {kind!r}.")
            out[kind] = _path(p, root)
        return out
    items = [abnormal_dir] if isinstance(abnormal_dir, (str, os.PathLike)) else abnormal_dir
    if not isinstance(items, (list, tuple)) or not items:
        raise TypeError(f"abnormal_dir must be a folder, a list of folders or a dict "
                        f"{{defect type: folder}}, got {abnormal_dir!r}.")
    out = {}
    for p in items:
        q = _path(p, root)
        if q.name in out:
            raise ValueError(f"two abnormal folders are named {q.name!r} ({out[q.name]} and "
                             f"{q}); the folder name is the defect type: give a dict "
                             "abnormal_dir={'type_a': folder_a, 'type_b': folder_b}.")
        out[q.name] = q
    return out


def _mask_folders(mask_dir, root, kinds: dict[str, Path]) -> dict[str, Path]:
    """``{defect type: folder holding its masks}`` for the types that have one."""
    if mask_dir is None:
        default = root / _DEFAULT_MASKS if root is not None else None
        if default is None or not default.is_dir():
            return {}
        mask_dir = default
    if isinstance(mask_dir, dict):
        unknown = sorted(set(mask_dir) - set(kinds))
        if unknown:
            raise ValueError(f"mask_dir names defect types {unknown} that are not among the "
                             f"abnormal folders {sorted(kinds)}.")
        return {k: _path(p, root) for k, p in mask_dir.items()}
    if isinstance(mask_dir, (list, tuple)):
        if len(mask_dir) != len(kinds):
            raise ValueError(f"mask_dir has {len(mask_dir)} folders for {len(kinds)} "
                             "abnormal folders: give one per abnormal folder, in the same "
                             "order, or a dict {defect type: folder}.")
        return {k: _path(p, root) for k, p in zip(kinds, mask_dir)}
    m = _path(mask_dir, root)
    if not m.is_dir():
        raise FileNotFoundError(f"the mask folder {m} does not exist.")
    # one sub-folder per type, or every mask directly in the folder
    return {k: (m / k if (m / k).is_dir() else m) for k in kinds}


def load(root=None, *, normal_dir="good", abnormal_dir=None, mask_dir=None,
         normal_test_dir=None, test_fraction: float = 0.2, size=None,
         n_train: int | None = None, n_test: int | None = None, seed=0,
         extensions: Sequence[str] | None = None, progress: bool = True
         ) -> tuple[Split, Split]:
    """Read your own folders of normal and abnormal images as ``(train, test)``.

    Parameters
    ----------
    root : str or Path, optional
        The folder the other folders are relative to. Alone, it is read with the name
        scheme :data:`LAYOUT`.
    normal_dir : str or Path, default "good"
        The normal (defect-free) images.
    abnormal_dir : str, Path, list of them or dict, optional
        The abnormal images: a folder, a list of folders (each folder's name is its
        defect type) or ``{defect type: folder}``. Default: every sub-folder of
        ``root`` other than the normal, normal test and mask folders (none without
        ``root``: a test split of normal images only).
    mask_dir : str, Path, list or dict, optional
        Where the masks of the abnormal images are, matched by file stem
        (``<stem>_mask.*`` first, then ``<stem>.*``; any non-zero pixel is defect): a
        folder (holding one sub-folder per defect type, or all masks directly), a list
        parallel to ``abnormal_dir`` or ``{defect type: folder}``. It may be the image
        folder itself (masks beside their images, e.g. ``.png`` masks beside ``.jpg``
        images: then pass ``extensions=(".jpg",)``). Default: ``root/masks`` when it
        exists. Abnormal images without a mask load with ``test.has_mask`` False and a
        warning.
    normal_test_dir : str or Path, optional
        Normal test images; then all of ``normal_dir`` is for training.
    test_fraction : float in [0, 1), default 0.2
        Otherwise this share of the normal images, drawn with ``seed``, goes to the
        test split.
    size : int, (int, int) or None, default None
        Resize every image (bilinear) and mask (nearest neighbour) to this size. None
        keeps the native size, which must then be the same for every image.
    n_train, n_test : int or None
        Read only that many images (seeded, the test subset keeps the share of
        normal images); None reads all.
    seed : int or numpy Generator, default 0
    extensions : list of str, optional
        The file endings read as images; default :data:`adkit.data.files.IMAGE_EXTENSIONS`.
    progress : bool, default True

    Returns
    -------
    train, test : Split
        ``names`` are ``"good/<stem>"`` and ``"<type>/<stem>"``; the test split lists
        the normal images first, then the abnormal ones type by type.
    """
    n_train = check_count(n_train, "n_train")
    n_test = check_count(n_test, "n_test")
    size = check_size(size)
    check_in_range(test_fraction, "test_fraction", 0, 1, high_inclusive=False)
    rng = check_seed(seed)
    if extensions is not None:
        if isinstance(extensions, str) or not all(isinstance(e, str) for e in extensions):
            raise TypeError(f"extensions must be a list of file endings such as "
                            f"['.png', '.jpg'], got {extensions!r}.")
        extensions = [e if e.startswith(".") else "." + e for e in extensions]
    if root is not None:
        root = _path(root, None)
        if not root.is_dir():
            raise FileNotFoundError(f"the dataset folder {root} does not exist. Expected "
                                    f"(with root= only):\n{LAYOUT}")
    normal = _path(normal_dir, root)
    if not normal.is_dir():
        raise FileNotFoundError(
            f"the folder of normal images {normal} does not exist: pass normal_dir= (and "
            f"root=). With root= only, the expected layout is:\n{LAYOUT}")
    normal_files = list_images(normal, extensions)
    if not normal_files:
        raise FileNotFoundError(f"the folder of normal images {normal} holds no image file.")
    normal_test = None if normal_test_dir is None else _path(normal_test_dir, root)
    if normal_test is not None and not normal_test.is_dir():
        raise FileNotFoundError(f"the folder of normal test images {normal_test} does not "
                                "exist.")

    skip = [normal, normal_test]
    if isinstance(mask_dir, (str, os.PathLike)):
        skip.append(_path(mask_dir, root))
    elif mask_dir is None and root is not None:
        skip.append(root / _DEFAULT_MASKS)
    kinds = _abnormal_folders(abnormal_dir, root, [s for s in skip if s is not None])
    if "good" in kinds:
        raise ValueError(f"an abnormal folder is named 'good' ({kinds['good']}), the name "
                         "of normal images: give abnormal_dir as a dict with another type name.")
    for kind, folder in kinds.items():
        if not folder.is_dir():
            raise FileNotFoundError(f"the folder of abnormal images {folder} ({kind!r}) does "
                                    "not exist.")
    masks_of = _mask_folders(mask_dir, root, kinds)
    for kind, folder in masks_of.items():
        if not folder.is_dir():
            raise FileNotFoundError(f"the mask folder {folder} (for {kind!r}) does not exist.")

    # normal images: train, and the held-out part for the test split
    if normal_test is not None:
        train_files, test_normal = normal_files, list_images(normal_test, extensions)
    else:
        k = int(round(test_fraction * len(normal_files)))
        if len(normal_files) - k < 1:
            raise ValueError(f"{normal} holds {len(normal_files)} normal image(s): with "
                             f"test_fraction={test_fraction} none is left for training.")
        perm = rng.permutation(len(normal_files))
        train_files = [normal_files[i] for i in np.sort(perm[k:])]
        test_normal = [normal_files[i] for i in np.sort(perm[:k])]
    entries = [Entry(f, 0, "good", f"good/{f.stem}") for f in test_normal]

    used: dict[Path, Path] = {}
    n_masks = 0
    for kind, folder in kinds.items():
        files = list_images(folder, extensions)
        if not files:
            raise FileNotFoundError(f"the folder of abnormal images {folder} ({kind!r}) holds "
                                    "no image file.")
        mfolder = masks_of.get(kind)
        by_stem = index_by_stem(list_images(mfolder)) if mfolder is not None else {}
        for f in files:
            mask = find_mask(f, by_stem, mfolder) if by_stem else None
            if mask is not None:
                if mask in used:
                    raise ImageFileError(
                        f"the mask {mask} matches two images, {used[mask]} and {f}: put the "
                        "masks of each defect type in their own folder (mask_dir/<type>/).")
                used[mask] = f
                n_masks += 1
            entries.append(Entry(f, 1, kind, f"{kind}/{f.stem}", mask, mask is not None))
    images = {e.image.resolve(): e.image for e in entries}
    images.update({f.resolve(): f for f in train_files})
    for mask, image in used.items():
        if mask.resolve() in images:
            raise ImageFileError(
                f"the file {mask} is read as an image and as the mask of {image}: when the "
                "masks lie beside their images, pass extensions= to read only the images "
                "(e.g. extensions=['.jpg']).")
    if masks_of and kinds and n_masks == 0:
        where = sorted({str(p) for p in masks_of.values()})
        raise FileNotFoundError(
            f"no mask in {where} matches an abnormal image by file stem (e.g. "
            f"{entries[-1].image.stem!r} needs {entries[-1].image.stem}.png or "
            f"{entries[-1].image.stem}_mask.png): rename the masks or pass mask_dir=None.")
    if not entries:
        raise ValueError(f"there is no test image: give abnormal_dir= or normal_test_dir=, "
                         f"or a test_fraction > 0 of the normal images in {normal}.")

    labels = np.array([e.label for e in entries], np.int64)
    sel_train = subsample(len(train_files), n_train, rng)
    sel_test = subsample(len(entries), n_test, rng, labels)
    what = f"folder {root or normal}"
    train = read_split([Entry(train_files[i], 0, "good", f"good/{train_files[i].stem}")
                        for i in sel_train], size, progress, f"reading {what} train")
    test = read_split([entries[i] for i in sel_test], size, progress, f"reading {what} test",
                      shape=train.size if size is None else None)
    lacking = {test.defect_types[i] for i in np.flatnonzero(~test.has_mask)}
    searched = sorted({str(masks_of[k]) for k in lacking if k in masks_of})
    warn_missing_masks(test, f"no mask file by stem in {searched}" if searched else
                       "no mask folder for them")
    return train, test
