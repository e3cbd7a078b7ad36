"""What a reader hands to the builder: a Dataset of two Splits in canonical source order,
and the helpers readers share (file digests, integer checks)."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..recordio import UserError

SPLITS = ("train", "test")


@dataclass
class Split:
    """One split in canonical source order: record key i is item i."""
    labels: np.ndarray                       # int64 labels
    refs: list[str]                          # where each item came from (for .lst / messages)
    # indices -> uint8 pixels, (n, H, W, 3) RGB or (n, H, W) grey
    take_pixels: Callable[[np.ndarray], np.ndarray] | None = None
    paths: list[str] | None = None           # image files, for folder sources

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    classes: list[str] | None                # class names, or None when the source has none
    splits: dict[str, Split]
    source: dict = field(default_factory=dict)   # the manifest's record: kind, path, files
    reads: list[str] = field(default_factory=list)   # files and folders the build reads


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_file(path: str) -> dict:
    return {"name": os.path.basename(path), "bytes": os.path.getsize(path),
            "sha256": sha256_file(path)}


def escaped(path: str) -> str:
    """``path`` printable in any text stream: the bytes of a file name that is not UTF-8
    shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def integer_array(values, what: str, lo: int, hi: int) -> np.ndarray:
    """``values`` as an array when every entry is an integer in [lo, hi] (pixel bytes,
    class labels), so that casting it loses nothing; UserError naming ``what``
    otherwise, never a wrapped or truncated value."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as e:
        raise UserError(f"{what} is not an array of numbers ({e})") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.integer) or
                                     np.issubdtype(array.dtype, np.floating) or
                                     array.dtype == bool):
        raise UserError(f"{what} has dtype {array.dtype}, expected integers")
    if array.size and np.issubdtype(array.dtype, np.floating) and (
            not np.all(np.isfinite(array)) or np.any(array != np.round(array))):
        raise UserError(f"{what} holds values that are not integers, e.g. "
                        f"{array[~np.isfinite(array) | (array != np.round(array))].flat[0]}")
    if array.size and (array.min() < lo or array.max() > hi):
        raise UserError(f"{what} holds values outside [{lo}, {hi}]: "
                        f"{array.min()} to {array.max()}")
    return array
