"""CIFAR-10 and CIFAR-100 in their python format: ``cifar-10-python.tar.gz`` /
``cifar-100-python.tar.gz``, or the folder they unpack to, of pickled batches
(``b'data'``: uint8 rows of 3072 bytes, the red, green and blue planes of a 32x32 image).
"""
from __future__ import annotations

import lzma
import os
import pickle
import tarfile
import zlib

import numpy as np

from ...recordio import UserError
from ..dataset import SPLITS, Dataset, Split, describe_file, integer_array

CIFAR_LAYOUT = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": b"labels",
        "names_key": b"label_names",
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": b"fine_labels",
        "names_key": b"fine_label_names",
    },
}
# What a damaged archive raises: tarfile's errors, a compressed stream cut short
# (EOFError) or corrupt (OSError incl. gzip.BadGzipFile, zlib.error, lzma.LZMAError).
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


def cifar_expected(name: str) -> str:
    layout = CIFAR_LAYOUT[name]
    members = "data_batch_1..5 and test_batch" if name == "cifar10" else "train and test"
    return (f"expected {layout['archive']} or a folder {layout['folder']}/ containing {members} "
            f"(SOURCE may also be the folder holding either)")


def locate_cifar(name: str, source: str) -> tuple[str, str]:
    """Return ('archive', path) or ('folder', path) for a CIFAR SOURCE."""
    layout = CIFAR_LAYOUT[name]
    members = layout["train"] + layout["test"]
    candidates = [source]
    if os.path.isdir(source):
        candidates += [os.path.join(source, layout["archive"]),
                       os.path.join(source, layout["folder"])]
    for path in candidates:
        if os.path.isfile(path) and is_archive(path):
            return "archive", path
        if os.path.isdir(path) and all(os.path.isfile(os.path.join(path, m)) for m in members):
            return "folder", path
    raise UserError(f"{name} SOURCE {source!r} not usable: {cifar_expected(name)}")


def is_archive(path: str) -> bool:
    """True for a tar file (compressed or not); a damaged one whose start is a compressed
    stream is a UserError naming it."""
    try:
        return tarfile.is_tarfile(path)
    except ARCHIVE_ERRORS as e:
        raise UserError(f"{path}: cannot read archive ({e})") from None


def unpickle_batch(blob: bytes, where: str) -> dict:
    try:
        return pickle.loads(blob, encoding="bytes")
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad input
        raise UserError(f"{where}: not a CIFAR python pickle ({type(e).__name__}: {e})") from None


def read_cifar_members(kind: str, path: str, layout: dict) -> dict[str, dict]:
    """Unpickle the batch files (and meta, if present) from an archive or folder."""
    wanted = layout["train"] + layout["test"] + [layout["meta"]]
    found = {}
    if kind == "folder":
        for member in wanted:
            member_path = os.path.join(path, member)
            if os.path.isfile(member_path):
                with open(member_path, "rb") as f:
                    found[member] = unpickle_batch(f.read(), member_path)
        return found
    blobs = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for info in tar.getmembers():
                base = os.path.basename(info.name)
                in_folder = os.path.dirname(info.name).endswith(layout["folder"])
                if info.isfile() and base in wanted and in_folder:
                    blobs[base] = (info.name, tar.extractfile(info).read())
            # tarfile stops at the end-of-archive blocks; reading the compressed stream
            # to its end checks its trailer (gzip: CRC-32 and length) too, before any
            # member is trusted.
            while tar.fileobj.read(1 << 20):
                pass
    except ARCHIVE_ERRORS as e:
        raise UserError(f"{path}: cannot read archive ({e or type(e).__name__})") from None
    for base, (name, blob) in blobs.items():
        found[base] = unpickle_batch(blob, f"{path}:{name}")
    missing = [m for m in layout["train"] + layout["test"] if m not in found]
    if missing:
        raise UserError(f"{path}: archive lacks {layout['folder']}/{', '.join(missing)}; "
                        f"{cifar_expected(layout['name'])}")
    return found


def cifar_split(batches: list[tuple[str, dict]],
                layout: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Concatenate batches into (RGB images N,32,32,3; labels; refs)."""
    images, labels, refs = [], [], []
    for member, batch in batches:
        if b"data" not in batch or layout["label_key"] not in batch:
            raise UserError(f"{member}: CIFAR batch lacks b'data' or {layout['label_key']!r}")
        data = integer_array(batch[b"data"], f"{member}: b'data'", 0, 255).astype(
            np.uint8, copy=False)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise UserError(f"{member}: b'data' has shape {data.shape}, expected (N, 3072)")
        batch_labels = integer_array(batch[layout["label_key"]],
                                     f"{member}: {layout['label_key']!r}", 0, 2 ** 62).astype(
            np.int64)
        if batch_labels.shape != (data.shape[0],):
            raise UserError(f"{member}: {batch_labels.size} labels for {data.shape[0]} images")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
        refs += [f"{member}/{i}" for i in range(data.shape[0])]
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), refs


def load_cifar(name: str, source: str) -> Dataset:
    layout = dict(CIFAR_LAYOUT[name], name=name)
    kind, path = locate_cifar(name, source)
    members = read_cifar_members(kind, path, layout)
    splits = {}
    for split in SPLITS:
        images, labels, refs = cifar_split([(m, members[m]) for m in layout[split]], layout)
        splits[split] = Split(labels, refs, take_pixels=images.__getitem__)
    classes = None
    if layout["meta"] in members:
        classes = [n.decode() for n in members[layout["meta"]].get(layout["names_key"], [])] or None
    if kind == "archive":
        paths = [path]
    else:
        paths = [os.path.join(path, m) for m in layout["train"] + layout["test"]]
    return Dataset(classes, splits, {"kind": kind, "path": source,
                                     "files": [describe_file(p) for p in paths]}, paths)
