"""The MNIST family (MNIST, Fashion-MNIST, KMNIST): four IDX files in one folder,
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each gzipped as published (``.gz``) or unpacked.

An IDX file is a big-endian header, two zero bytes, a type byte (0x08: unsigned bytes)
and a dimension count, then one 32-bit size per dimension, then the data: images are
(N, 28, 28) grey pixels, labels (N,) classes.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from ...recordio import UserError
from ..dataset import Dataset, Split, describe_file

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
UNSIGNED_BYTE = 0x08
IMAGE_SIDE = 28


def idx_expected() -> str:
    names = ", ".join(n for pair in IDX_FILES.values() for n in pair)
    return f"expected a folder holding {names}, each gzipped (.gz) or not"


def find_idx_files(name: str, source: str) -> list[str]:
    """The four files in SOURCE, in IDX_FILES order: ``<file>.gz`` where it exists, else
    ``<file>``."""
    found, missing = [], []
    for base in (n for pair in IDX_FILES.values() for n in pair):
        candidates = [os.path.join(source, base + ".gz"), os.path.join(source, base)]
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            missing.append(base)
        else:
            found.append(path)
    if missing or not os.path.isdir(source):
        raise UserError(f"{name} SOURCE {source!r} not usable: {idx_expected()} (missing: "
                        f"{', '.join(missing) if os.path.isdir(source) else 'the folder'})")
    return found


def read_file(path: str) -> bytes:
    """The bytes of an IDX file; a .gz is decompressed to its end, so that a stream cut
    short or damaged, or a wrong checksum, is a UserError naming the file."""
    with open(path, "rb") as f:
        data = f.read()
    if not path.endswith(".gz"):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read the gzip stream ({e or type(e).__name__})") \
            from None


def parse_idx(path: str, data: bytes, ndim: int, what: str) -> np.ndarray:
    """The uint8 array of an IDX file of ``ndim`` dimensions holding ``what``."""
    want = (UNSIGNED_BYTE << 8) | ndim
    if len(data) < 4 + 4 * ndim:
        raise UserError(f"{path}: {len(data)} bytes, too short for the header of an IDX file "
                        f"of {what} ({4 + 4 * ndim} bytes)")
    (magic,) = struct.unpack_from(">I", data)
    if magic != want:
        raise UserError(f"{path}: IDX magic number 0x{magic:08x}, expected 0x{want:08x} "
                        f"({what}: unsigned bytes in {ndim} dimension{'s' * (ndim > 1)})")
    shape = struct.unpack_from(f">{ndim}I", data, 4)
    body = memoryview(data)[4 + 4 * ndim:]
    need = int(np.prod(shape, dtype=np.int64))
    if len(body) != need:
        raise UserError(f"{path}: {len(body)} bytes of data, the header's shape "
                        f"{'x'.join(map(str, shape))} needs {need}"
                        + (" (file cut short?)" if len(body) < need else ""))
    return np.frombuffer(body, np.uint8).reshape(shape)


def read_split(images_path: str, labels_path: str, num_classes: int) -> Split:
    images = parse_idx(images_path, read_file(images_path), 3, "images")
    labels = parse_idx(labels_path, read_file(labels_path), 1, "labels")
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise UserError(f"{images_path}: images of {images.shape[1]}x{images.shape[2]} pixels, "
                        f"expected {IMAGE_SIDE}x{IMAGE_SIDE}")
    if len(images) != len(labels):
        raise UserError(f"{images_path} holds {len(images)} images, {labels_path} "
                        f"{len(labels)} labels: expected one label per image")
    bad = np.flatnonzero(labels >= num_classes)
    if len(bad):
        raise UserError(f"{labels_path}: label {labels[bad[0]]} at item {bad[0]}, expected "
                        f"0..{num_classes - 1}")
    name = os.path.basename(images_path)
    return Split(labels.astype(np.int64), [f"{name}/{i}" for i in range(len(labels))],
                 take_pixels=images.__getitem__)


def load_idx(name: str, classes: tuple[str, ...], source: str) -> Dataset:
    paths = find_idx_files(name, source)
    splits = {split: read_split(paths[2 * i], paths[2 * i + 1], len(classes))
              for i, split in enumerate(IDX_FILES)}
    return Dataset(list(classes), splits, {"kind": "folder", "path": source,
                                           "files": [describe_file(p) for p in paths]}, paths)
