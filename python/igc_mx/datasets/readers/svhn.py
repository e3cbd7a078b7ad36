"""SVHN format 2: ``train_32x32.mat``, ``extra_32x32.mat`` and ``test_32x32.mat`` (MATLAB
files with X (32, 32, 3, N) uint8 and y (N, 1), where 10 stands for the digit 0)."""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ...recordio import UserError
from ..dataset import Dataset, Split, describe_file

SVHN_FILES = {"train": "train_32x32.mat", "extra": "extra_32x32.mat", "test": "test_32x32.mat"}


def load_svhn_mat(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (X as (32,32,3,N) uint8, labels with 10 mapped to 0)."""
    try:
        import scipy.io  # only SVHN needs scipy
    except ModuleNotFoundError:
        raise UserError("reading SVHN's .mat files needs scipy: pip install 'igc-mx[svhn]' "
                        "(or scipy)") from None
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # noqa: BLE001 - scipy raises many types for bad files
        raise UserError(f"{path}: cannot read as a MATLAB .mat file ({e})") from None
    if "X" not in mat or "y" not in mat:
        found = sorted(k for k in mat if not k.startswith('__'))
        raise UserError(f"{path}: expected variables X (32,32,3,N) and y (N,1); found {found}")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise UserError(f"{path}: X has shape {x.shape} {x.dtype}, expected "
                        f"(32,32,3,{len(y)}) uint8")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise UserError(f"{path}: labels range {y.min()}..{y.max()}, expected 1..10 (10 = digit 0)")
    return x, np.where(y == 10, 0, y)


def svhn_take(parts: list[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Index into concatenated (32,32,3,N) arrays without concatenating them."""
    offsets = np.cumsum([0] + [p.shape[3] for p in parts])

    def take(indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices)
        out = np.empty((len(indices), 32, 32, 3), np.uint8)
        which = np.searchsorted(offsets, indices, side="right") - 1
        for part_no, part in enumerate(parts):
            sel = np.nonzero(which == part_no)[0]
            if len(sel):
                out[sel] = part[..., indices[sel] - offsets[part_no]].transpose(3, 0, 1, 2)
        return out

    return take


def load_svhn(source: str, no_extra: bool = False) -> Dataset:
    names = ["train"] + ([] if no_extra else ["extra"])
    needed = [SVHN_FILES[n] for n in names] + [SVHN_FILES["test"]]
    missing = [f for f in needed if not os.path.isfile(os.path.join(source, f))]
    if not os.path.isdir(source) or missing:
        hint = "" if no_extra else "; pass --no-extra to build train from train_32x32.mat alone"
        raise UserError(f"svhn SOURCE {source!r} not usable: expected a folder containing "
                        f"{', '.join(needed)} (SVHN format 2; missing: "
                        f"{', '.join(missing) or 'the folder'}){hint}")
    splits = {}
    for split, parts in (("train", names), ("test", ["test"])):
        arrays, labels, refs = [], [], []
        for part in parts:
            x, y = load_svhn_mat(os.path.join(source, SVHN_FILES[part]))
            arrays.append(x)
            labels.append(y)
            refs += [f"{SVHN_FILES[part]}/{i}" for i in range(len(y))]
        splits[split] = Split(np.concatenate(labels), refs, take_pixels=svhn_take(arrays))
    paths = [os.path.join(source, f) for f in needed]
    return Dataset([str(d) for d in range(10)], splits,
                   {"kind": "folder", "path": source,
                    "files": [describe_file(p) for p in paths]}, paths)
