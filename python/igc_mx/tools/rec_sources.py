"""The published dataset downloads that ``igc-make-rec`` reads: CIFAR-10/100 (python
tarballs), SVHN (.mat files) and ImageNet (class folders or .lst files).
"""
from __future__ import annotations

import argparse
import hashlib
import lzma
import math
import os
import pickle
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..recordio import UserError

SPLITS = ("train", "test")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
CIFAR_LAYOUT = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": b"labels",
        "names_key": b"label_names",
        "num_classes": 10,
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": b"fine_labels",
        "names_key": b"fine_label_names",
        "num_classes": 100,
    },
}
SVHN_FILES = {"train": "train_32x32.mat", "extra": "extra_32x32.mat", "test": "test_32x32.mat"}


@dataclass
class Split:
    """One split in canonical source order: record key i is item i."""
    labels: np.ndarray                       # int64 labels
    refs: list[str]                          # where each item came from (for .lst / messages)
    take_pixels: Callable[[np.ndarray], np.ndarray] | None = None  # indices -> (n,H,W,3) RGB
    paths: list[str] | None = None           # image files, for folder sources

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    name: str
    num_classes: int
    classes: list[str] | None
    splits: dict[str, Split]
    source: dict = field(default_factory=dict)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_file(path: str) -> dict:
    return {"name": os.path.basename(path), "bytes": os.path.getsize(path),
            "sha256": sha256_file(path)}


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


# What a damaged archive raises: tarfile's errors, a compressed stream cut short
# (EOFError) or corrupt (OSError incl. gzip.BadGzipFile, zlib.error, lzma.LZMAError).
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


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
        files = [describe_file(path)]
    else:
        files = [describe_file(os.path.join(path, m)) for m in layout["train"] + layout["test"]]
    return Dataset(name, layout["num_classes"], classes, splits,
                   {"kind": kind, "path": source, "files": files})


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


def load_svhn(source: str, include_extra: bool) -> Dataset:
    names = ["train"] + (["extra"] if include_extra else [])
    needed = [SVHN_FILES[n] for n in names] + [SVHN_FILES["test"]]
    missing = [f for f in needed if not os.path.isfile(os.path.join(source, f))]
    if not os.path.isdir(source) or missing:
        hint = ("; pass --no-extra to build train from train_32x32.mat alone"
                if include_extra else "")
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
    files = [describe_file(os.path.join(source, f)) for f in needed]
    return Dataset("svhn", 10, [str(d) for d in range(10)], splits,
                   {"kind": "folder", "path": source, "files": files})


def walk_once(top: str) -> Iterator[tuple[str, list[str]]]:
    """(folder, sorted file names) of every folder under ``top``, following symbolic
    links but entering each real folder once: a link back to a folder already walked
    (a loop, or a second way into the same images) is skipped, with a warning."""
    seen = set()
    for root, dirs, files in os.walk(top, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            print(f"make_rec: warning: {root} is a folder already read (through a symbolic "
                  "link); its images are taken once", file=sys.stderr)
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        yield root, sorted(files)


def list_class_folder(split_dir: str, classes: list[str]) -> tuple[list[str], list[int]]:
    """Image files (relative paths) and labels of a class-per-folder tree."""
    paths, labels = [], []
    index = {c: i for i, c in enumerate(classes)}
    for cls in sorted(os.listdir(split_dir)):
        cls_dir = os.path.join(split_dir, cls)
        if not os.path.isdir(cls_dir):
            continue
        if cls not in index:
            raise UserError(f"{cls_dir}: class folder {cls!r} is not among the train classes")
        for root, files in walk_once(cls_dir):
            for fname in files:
                if fname.lower().endswith(IMAGE_EXTS):
                    paths.append(os.path.join(root, fname))
                    labels.append(index[cls])
    return paths, labels


def read_lst(path: str) -> tuple[list[str], list[int]]:
    """Read an im2rec .lst (index, label, path) in file order."""
    paths, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise UserError(f"{path}:{line_no}: expected 3 tab-separated fields "
                                f"'index<TAB>label<TAB>path', got {len(fields)}")
            try:
                label = float(fields[1])
            except ValueError:
                raise UserError(f"{path}:{line_no}: label {fields[1]!r} is not a number") from None
            if not math.isfinite(label) or label != int(label) or label < 0:
                raise UserError(f"{path}:{line_no}: label {fields[1]!r} must be a "
                                "non-negative integer")
            paths.append(fields[2].strip())
            labels.append(int(label))
    return paths, labels


def folder_split(root: str, rel_paths: list[str], labels: list[int]) -> Split:
    for p in rel_paths:
        if "\t" in p or "\n" in p:
            raise UserError(f"image path {p!r} contains a tab or newline, which .lst files "
                            "cannot hold")
    abs_paths = [p if os.path.isabs(p) else os.path.join(root, p) for p in rel_paths]
    return Split(np.asarray(labels, np.int64), list(rel_paths), paths=abs_paths)


IMAGENET_EXPECTED = ("expected a folder with train/<class>/*.jpg and val/<class>/*.jpg "
                     "(class folders sorted by name give labels 0..K-1), or with train.lst and "
                     "val.lst (im2rec format, paths relative to SOURCE or --image-root)")


def load_imagenet(source: str, image_root: str | None) -> Dataset:
    if not os.path.isdir(source):
        raise UserError(f"imagenet SOURCE {source!r} is not a folder: {IMAGENET_EXPECTED}")
    lst = {s: os.path.join(source, f"{s}.lst") for s in ("train", "val")}
    if os.path.isfile(lst["train"]):
        if not os.path.isfile(lst["val"]):
            raise UserError(f"{lst['val']} not found: {IMAGENET_EXPECTED}")
        root = image_root or source
        splits = {split: folder_split(root, *read_lst(lst[name]))
                  for split, name in (("train", "train"), ("test", "val"))}
        num_classes = int(max(max(s.labels, default=-1) for s in splits.values())) + 1
        files = [describe_file(lst["train"]), describe_file(lst["val"])]
        return Dataset("imagenet", num_classes, None, splits,
                       {"kind": "lst", "path": source, "files": files})
    dirs = {s: os.path.join(source, s) for s in ("train", "val")}
    if not all(os.path.isdir(d) for d in dirs.values()):
        raise UserError(f"imagenet SOURCE {source!r} has neither train.lst nor train/ and "
                        f"val/: {IMAGENET_EXPECTED}")
    classes = sorted(d for d in os.listdir(dirs["train"])
                     if os.path.isdir(os.path.join(dirs["train"], d)))
    if not classes:
        raise UserError(f"{dirs['train']}: no class folders found: {IMAGENET_EXPECTED}")
    splits = {}
    for split, name in (("train", "train"), ("test", "val")):
        paths, labels = list_class_folder(dirs[name], classes)
        splits[split] = folder_split(source, [os.path.relpath(p, source) for p in paths], labels)
    return Dataset("imagenet", len(classes), classes, splits,
                   {"kind": "folders", "path": source, "files": []})


def load_dataset(args: argparse.Namespace) -> Dataset:
    if args.dataset in CIFAR_LAYOUT:
        return load_cifar(args.dataset, args.source)
    if args.dataset == "svhn":
        return load_svhn(args.source, not args.no_extra)
    return load_imagenet(args.source, args.image_root)
