"""ImageNet, or any image collection: ``train/<class>/*.jpg`` and ``val/<class>/*.jpg``
(labels are the indices of the sorted train class folders), or im2rec-format lists
``train.lst`` and ``val.lst`` (``index<TAB>label<TAB>path``, records in line order)."""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator

import numpy as np

from ...recordio import UserError
from ..dataset import Dataset, Split, describe_file, escaped

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
# A record's label is a float32: every integer up to 2**24 is exact, 2**24 + 1 is not.
MAX_EXACT_LABEL = 2 ** 24
IMAGENET_EXPECTED = ("expected a folder with train/<class>/*.jpg and val/<class>/*.jpg "
                     "(class folders sorted by name give labels 0..K-1), or with train.lst and "
                     "val.lst (im2rec format, paths relative to SOURCE or --image-root)")


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


def lst_label(text: str, where: str) -> int:
    """The class of a .lst label field: a non-negative integer that a record's float32
    label holds exactly."""
    try:
        label = float(text)
    except ValueError:
        raise UserError(f"{where}: label {text!r} is not a number") from None
    if not math.isfinite(label) or label != int(label) or label < 0:
        raise UserError(f"{where}: label {text!r} must be a non-negative integer")
    if label > MAX_EXACT_LABEL:
        raise UserError(f"{where}: label {text!r} is above {MAX_EXACT_LABEL}, the largest "
                        "class a record's float32 label holds exactly")
    return int(label)


def read_lst(path: str) -> tuple[list[str], list[int]]:
    """Read an im2rec .lst (index, label, path) in file order."""
    paths, labels = [], []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{path}:{line_no}: not UTF-8 text (byte 0x{raw[e.start]:02x} "
                                f"at column {e.start + 1})") from None
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 3:
                raise UserError(f"{path}:{line_no}: expected 3 tab-separated fields "
                                f"'index<TAB>label<TAB>path', got {len(fields)}")
            labels.append(lst_label(fields[1], f"{path}:{line_no}"))
            paths.append(fields[2].strip())
    return paths, labels


def folder_split(root: str, rel_paths: list[str], labels: list[int]) -> Split:
    for p in rel_paths:
        if "\t" in p or "\n" in p:
            raise UserError(f"image path {p!r} contains a tab or newline, which .lst files "
                            "cannot hold")
        try:
            p.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(f"{escaped(os.path.join(root, p))}: the file name is not UTF-8, "
                            "which the .lst and manifest files hold; rename the file") from None
    abs_paths = [p if os.path.isabs(p) else os.path.join(root, p) for p in rel_paths]
    return Split(np.asarray(labels, np.int64), list(rel_paths), paths=abs_paths)


def load_imagenet(source: str, image_root: str | None = None) -> Dataset:
    if not os.path.isdir(source):
        raise UserError(f"imagenet SOURCE {source!r} is not a folder: {IMAGENET_EXPECTED}")
    lst = {s: os.path.join(source, f"{s}.lst") for s in ("train", "val")}
    if os.path.isfile(lst["train"]):
        if not os.path.isfile(lst["val"]):
            raise UserError(f"{lst['val']} not found: {IMAGENET_EXPECTED}")
        root = image_root or source
        splits = {split: folder_split(root, *read_lst(lst[name]))
                  for split, name in (("train", "train"), ("test", "val"))}
        files = [describe_file(lst["train"]), describe_file(lst["val"])]
        return Dataset(None, splits, {"kind": "lst", "path": source, "files": files},
                       [lst["train"], lst["val"]])
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
    return Dataset(classes, splits, {"kind": "folders", "path": source, "files": []},
                   [dirs["train"], dirs["val"]])
