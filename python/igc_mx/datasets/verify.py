"""``igc-make-rec verify``: a built folder against its manifest: checksums, framing, every
record's header against the .idx/.lst lines, the images' headers and decoding, the order
of the records, the manifest's own fields and, when found, the source
(``manifest_checks``)."""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import cv2
import numpy as np

from ..recordio import iter_records, unpack_image_record
from .dataset import escaped, sha256_file
from .manifest import load_manifest
from .manifest_checks import (
    ImageRule,
    check_fields,
    check_source,
    expected_keys,
    order_problem,
    recipe_of,
)
from .recipes import DATASETS, DatasetSpec, Recipe
from .workers import InProcess, OrderedPool, worker_pool

MAX_PROBLEMS_SHOWN = 50


def check_files(out_dir: str, files: dict) -> list[str]:
    problems = []
    for name, expected in files.items():
        path = os.path.join(out_dir, name)
        if not os.path.isfile(path):
            problems.append(f"{name}: missing")
            continue
        size = os.path.getsize(path)
        if size != expected["bytes"]:
            problems.append(f"{name}: {size} bytes, manifest says {expected['bytes']}")
        elif sha256_file(path) != expected["sha256"]:
            problems.append(f"{name}: SHA-256 differs from the manifest")
    return problems


def read_text_table(path: str, columns: int) -> list[list[str]]:
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    bad = [i + 1 for i, r in enumerate(rows) if len(r) != columns]
    if bad:
        raise ValueError(f"{os.path.basename(path)} line {bad[0]} does not have {columns} "
                         "tab-separated fields")
    return rows


class HashingReader:
    """Sequential reader that hashes and counts every byte it hands out."""

    def __init__(self, file: BinaryIO):
        self.file, self.hash, self.size = file, hashlib.sha256(), 0

    def read(self, n: int) -> bytes:
        data = self.file.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class RecordChecker:
    """Checks each record's header against .idx/.lst lines and the class range, and its
    image's header against ``rule`` (an ImageRule); keeps the keys in file order."""
    MAX_IMAGE_PROBLEMS = 20   # the rest are counted

    def __init__(self, name: str, idx_rows: list, lst_rows: list, num_classes: int,
                 rule: ImageRule | None = None):
        self.name, self.idx_rows = name, idx_rows
        self.lst_rows, self.num_classes = lst_rows, num_classes
        self.count, self.class_counts, self.problems = 0, [0] * num_classes, []
        self.rule, self.keys, self.image_problems = rule, [], 0

    def check(self, offset: int, payload: bytes) -> tuple[int, bytes]:
        i = self.count
        flag, label, key, image = unpack_image_record(payload)
        where = f"{self.name}.rec record {i} (offset {offset})"
        if i >= len(self.idx_rows) or self.idx_rows[i] != [str(key), str(offset)]:
            self.problems.append(f"{where}: key {key} at offset {offset} does not match "
                                 f"{self.name}.idx line {i + 1}")
        if i >= len(self.lst_rows) or self.lst_rows[i][:2] != [str(key), f"{label:f}"]:
            self.problems.append(f"{where}: key/label does not match {self.name}.lst line {i + 1}")
        if flag != 0 or label != int(label) or not 0 <= label < self.num_classes:
            self.problems.append(f"{where}: label {label} (flag {flag}) is not a class in "
                                 f"0..{self.num_classes - 1}")
        else:
            self.class_counts[int(label)] += 1
        problem = self.rule.problem(image) if self.rule else None
        if problem:
            self.image_problems += 1
            if self.image_problems <= self.MAX_IMAGE_PROBLEMS:
                self.problems.append(f"{where}: {problem}")
        self.keys.append(key)
        self.count += 1
        return key, image

    def summary(self) -> list[str]:
        hidden = self.image_problems - self.MAX_IMAGE_PROBLEMS
        return [f"{self.name}.rec: {hidden} more images with header problems"] if hidden > 0 \
            else []

    def image_chunks(self, stream: BinaryIO, size: int = 256) -> Iterator[list[tuple[int, bytes]]]:
        """Walk all records, yielding [(key, image bytes)] chunks; framing errors become
        problems."""
        chunk = []
        try:
            for offset, payload in iter_records(stream):
                chunk.append(self.check(offset, payload))
                if len(chunk) == size:
                    yield chunk
                    chunk = []
        except ValueError as e:
            self.problems.append(f"{self.name}.rec: invalid RecordIO data: {e}")
        if chunk:
            yield chunk


def check_chunk(task: list[tuple[int, bytes]]) -> list[tuple[int, str | None, tuple | None]]:
    """Decode images for verify (runs in the workers): [(key, problem or None, shape)]."""
    cv2.setNumThreads(1)
    out = []
    for key, image_bytes in task:
        image = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            out.append((key, "image does not decode (cv2.imdecode returned None)", None))
        else:
            out.append((key, None, image.shape))
    return out


def expected_shape_problem(shape: tuple, recipe: dict, spec: DatasetSpec) -> str | None:
    if spec.channels == 1 and len(shape) != 2:
        return f"decoded shape {shape}, expected 1 channel"
    if spec.channels == 3 and (len(shape) != 3 or shape[2] != 3):
        return f"decoded shape {shape}, expected 3 channels"
    resize = recipe["resize_shorter_side"]
    if resize and min(shape[:2]) != resize:
        return f"decoded shape {shape}, expected shorter side {resize}"
    if not resize and spec.image_size and shape[:2] != spec.image_size:
        return f"decoded shape {shape}, expected {spec.image_size[1]}x{spec.image_size[0]}"
    return None


def check_images(name: str, chunks: Iterable, recipe: dict, pool: OrderedPool | InProcess,
                 spec: DatasetSpec) -> list[str]:
    problems = []
    for chunk in pool.imap(chunks):
        for key, problem, shape in chunk:
            problem = problem or expected_shape_problem(shape, recipe, spec)
            if problem:
                problems.append(f"{name} key {key}: {problem}")
    return problems


def verify_split(out_dir: str, name: str, info: dict, manifest: dict,
                 pool: OrderedPool | InProcess | None, recipe: Recipe | None = None) -> list[str]:
    """One sequential pass over the .rec: framing, headers vs .idx/.lst, checksum, and, with
    a ``pool``, decoding; with ``recipe``, every image's header and the order of the
    records too."""
    rec_name = f"{name}.rec"
    problems = check_files(out_dir, {n: e for n, e in info["files"].items() if n != rec_name})
    rec_path = os.path.join(out_dir, rec_name)
    if not os.path.isfile(rec_path):
        return problems + [f"{rec_name}: missing"]
    if problems:
        return problems
    try:
        idx_rows = read_text_table(os.path.join(out_dir, f"{name}.idx"), 2)
        lst_rows = read_text_table(os.path.join(out_dir, f"{name}.lst"), 3)
    except (ValueError, UnicodeDecodeError) as e:
        return [f"{name}: {e}"]
    spec = DATASETS[manifest["dataset"]]
    rule = ImageRule(recipe, spec) if recipe else None
    checker = RecordChecker(name, idx_rows, lst_rows, manifest["num_classes"], rule)
    with open(rec_path, "rb") as f:
        reader = HashingReader(f)
        chunks = checker.image_chunks(reader)
        if pool is not None:
            decode_problems = check_images(name, chunks, manifest["recipe"], pool, spec)
        else:
            decode_problems = []
            for _ in chunks:
                pass
        reader.drain()
    expected = info["files"][rec_name]
    if reader.size != expected["bytes"]:
        problems.append(f"{rec_name}: {reader.size} bytes, manifest says {expected['bytes']}")
    elif reader.hash.hexdigest() != expected["sha256"]:
        problems.append(f"{rec_name}: SHA-256 differs from the manifest")
    problems += checker.problems + checker.summary()
    if recipe and not checker.problems:
        order = order_problem(name, checker.keys, expected_keys(manifest, name), recipe.seed)
        problems += [order] if order else []
    if not checker.count == len(idx_rows) == len(lst_rows) == info["count"]:
        problems.append(f"{name}: {checker.count} records, {len(idx_rows)} .idx lines, "
                        f"{len(lst_rows)} .lst lines; "
                        f"manifest says {info['count']}")
    elif not checker.problems and checker.class_counts != info["class_counts"]:
        problems.append(f"{name}: per-class counts differ from the manifest")
    return problems + decode_problems


def verify(out_dir: str, workers: int = 1, decode: bool = True, source: str | None = None,
           check_the_source: bool = True) -> int:
    """Check ``out_dir`` against its manifest; print the verdict. Returns 0 when every
    check passes, 1 otherwise (the problems on stderr)."""
    manifest = load_manifest(out_dir)
    problems = check_fields(manifest)
    if problems:   # the records cannot be checked against fields that do not hold
        checked = []
    else:
        recipe = recipe_of(manifest)
        checked = ["recipe", "order", "image headers"]
        with worker_pool(check_chunk, workers if decode else 1) as pool:
            for name, info in manifest["splits"].items():
                problems += verify_split(out_dir, name, info, manifest,
                                         pool if decode else None, recipe)
        if check_the_source:
            source_problems, source_note = check_source(manifest, out_dir, source)
            problems += source_problems
            checked.append(source_note)
    if problems:
        print(f"verify FAILED for {out_dir}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems[:MAX_PROBLEMS_SHOWN]:
            print(f"  {p}", file=sys.stderr)
        if len(problems) > MAX_PROBLEMS_SHOWN:
            print(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more", file=sys.stderr)
        return 1
    total = sum(info["count"] for info in manifest["splits"].values())
    print(f"verify OK: {escaped(out_dir)}: {total} records, checksums match the manifest"
          + ("" if not decode else ", every image decodes"))
    print("checked against the manifest: " + escaped("; ".join(checked)))
    built_with = manifest.get("versions", {}).get("opencv")
    if built_with != cv2.__version__:
        print(f"note: built with OpenCV {built_with}, this is {cv2.__version__}; a rebuild "
              "here may differ in bytes")
    return 0
