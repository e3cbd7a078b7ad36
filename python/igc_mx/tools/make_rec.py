"""Build byte-reproducible MXNet RecordIO datasets (CIFAR-10/100, SVHN, ImageNet).

    igc-make-rec {cifar10,cifar100,svhn,imagenet} SOURCE OUT_DIR [options]
    igc-make-rec verify OUT_DIR
    igc-make-rec stats OUT_DIR [--split train]

OUT_DIR receives train.rec/.idx/.lst, test.rec/.idx/.lst and manifest.json.
The .rec/.idx files depend only on the input pixels, the recipe recorded in
the manifest and the OpenCV build (its codec versions are recorded too); the
number of worker processes does not change a byte.  See docs/make_rec.md.

The RecordIO framing (dmlc-core) and the image record header
(mxnet.recordio.IRHeader, struct 'IfQQ') are written in plain Python
(``igc_mx.recordio``), so building needs numpy, OpenCV and (for SVHN) scipy, but not
MXNet. ``rec_sources`` reads the published downloads; this module holds the
recipe, the encoding workers, the atomic writing, the manifest, and verify and
stats. Also ``python tools/make_rec.py`` in a checkout.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import multiprocessing
import os
import platform
import re
import signal
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import cv2
import numpy as np

from .. import NO_MXNET_ENV
from .._environ import environ
from .._process import Signalled, die_with_parent, raise_on_signals
from ..recordio import UserError, frame_record, iter_records, pack_image_record, unpack_image_record
from .rec_manifest import (
    ImageRule,
    check_fields,
    check_source,
    expected_keys,
    order_problem,
    recipe_of,
)
from .rec_recipe import (
    DATASETS,
    INTERPOLATIONS,
    RECIPES,
    RECORD_FORMAT,
    Recipe,
    recipe_from_args,
    regenerate_command,
    split_order,
)
from .rec_sources import SPLITS, Dataset, Split, load_dataset, sha256_file

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "igc-mx/make_rec"
MANIFEST_VERSION = 1
TMP_SUFFIX = ".partial"
LOCK_NAME = ".make_rec.lock"

class BadImage(UserError):
    """An input image that cannot be read or decoded."""


# --------------------------------------------------------------------------
# Image encoding (runs in worker processes)
# --------------------------------------------------------------------------

_WORKER_RECIPE: Recipe | None = None


def init_worker(recipe: Recipe) -> None:
    """Pool initializer: one OpenCV thread per process, recipe kept global."""
    global _WORKER_RECIPE
    _WORKER_RECIPE = recipe
    cv2.setNumThreads(1)


def resize_shorter_side(image: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    """Scale so the shorter side is `size` (im2rec's rule, integer floor)."""
    if size <= 0:
        return image
    height, width = image.shape[:2]
    new_size = ((size, height * size // width) if height > width
                else (width * size // height, size))
    if new_size == (width, height):
        return image
    return cv2.resize(image, new_size, interpolation=INTERPOLATIONS[interpolation])


def encode_image(bgr: np.ndarray, recipe: Recipe) -> bytes:
    """The encoded image; BadImage (without the source's name) when OpenCV cannot resize
    or encode it, e.g. a side beyond the encoder's limit (JPEG: 65500 pixels)."""
    try:
        image = resize_shorter_side(bgr, recipe.resize, recipe.interpolation)
        ok, buf = cv2.imencode("." + recipe.encoding, image, recipe.encode_params())
    except cv2.error as e:
        found = re.search(r"error: \(-?\d+:[^)]*\) (.*?)(?: in function '[^']*')?$",
                          str(e).strip(), re.M)
        why = found.group(1) if found else "cv2.error"
        raise BadImage(f"cannot encode a {bgr.shape[1]}x{bgr.shape[0]} image as "
                       f"{recipe.encoding} ({why})") from None
    if not ok:
        raise BadImage(f"cannot encode a {image.shape[1]}x{image.shape[0]} image as "
                       f"{recipe.encoding} (cv2.imencode failed)")
    return buf.tobytes()


def read_image_file(path: str) -> bytes:
    """The bytes of an image file; BadImage names the path and why it cannot be read.
    Only regular files: a FIFO would block the build and a device never end, so the
    file is opened without blocking and checked before it is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise BadImage(f"{path}: cannot read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadImage(f"{path}: not a regular file")
        try:
            return f.read()
        except OSError as e:
            raise BadImage(f"{path}: cannot read ({e.strerror})") from None


def decode_image(raw: bytes, path: str) -> np.ndarray:
    """The BGR image of a file's bytes; BadImage names the path when it does not decode."""
    try:
        image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None
    except cv2.error:
        image = None
    if image is None:
        raise BadImage(f"{path}: not a decodable image (cv2.imdecode returned None)")
    return image


@dataclass
class Encoded:
    key: int
    framed: bytes | None      # framed RecordIO record, None when the image is bad
    error: str | None = None
    source_sha256: bytes | None = None


def encode_chunk(task: tuple) -> list[Encoded]:
    """Encode one ordered chunk: ('pixels', keys, labels, rgb_array) or
    ('files', keys, labels, paths)."""
    kind, keys, labels, data = task
    recipe = _WORKER_RECIPE
    out = []
    for i, (key, label) in enumerate(zip(keys, labels, strict=True)):
        digest = None
        try:
            if kind == "pixels":
                bgr = np.ascontiguousarray(data[i][:, :, ::-1])
            else:
                raw = read_image_file(data[i])
                digest = hashlib.sha256(raw).digest()
                bgr = decode_image(raw, data[i])
            try:
                record = pack_image_record(int(key), int(label), encode_image(bgr, recipe))
                framed = frame_record(record)
            except UserError as e:   # BadImage, or a record past RecordIO's size limit
                where = data[i] if kind == "files" else f"image {key}"
                raise BadImage(f"{where}: {e}") from None
        except BadImage as e:
            out.append(Encoded(int(key), None, str(e), digest))
            continue
        out.append(Encoded(int(key), framed, None, digest))
    return out


def check_chunk(task: tuple) -> list[tuple[int, str | None, tuple | None]]:
    """Decode images for verify: [(key, problem or None, shape)]."""
    cv2.setNumThreads(1)
    out = []
    for key, image_bytes in task:
        image = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            out.append((key, "image does not decode (cv2.imdecode returned None)", None))
        else:
            out.append((key, None, image.shape))
    return out


def channel_sums(task: list[bytes]) -> tuple[int, int, list[int], list[int]]:
    """(images, pixel count, per-channel sum, per-channel sum of squares) in RGB order."""
    cv2.setNumThreads(1)
    count, sums, squares = 0, [0, 0, 0], [0, 0, 0]
    for image_bytes in task:
        bgr = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError("an image does not decode; run `verify` for details")
        pixels = bgr.reshape(-1, 3).astype(np.int64)
        count += pixels.shape[0]
        for c in range(3):
            channel = pixels[:, 2 - c]
            sums[c] += int(channel.sum())
            squares[c] += int((channel * channel).sum())
    return len(task), count, sums, squares


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

def make_tasks(split: Split, order: np.ndarray, chunk: int) -> Iterator[tuple]:
    for start in range(0, len(order), chunk):
        keys = order[start:start + chunk]
        labels = split.labels[keys]
        if split.paths is not None:
            yield "files", keys, labels, [split.paths[k] for k in keys]
        else:
            yield "pixels", keys, labels, split.take_pixels(keys)


def pool_context() -> multiprocessing.context.BaseContext:
    """fork where available (cheap), spawn once MXNet is loaded (its engine is fork-hostile)."""
    methods = multiprocessing.get_all_start_methods()
    fork = "fork" in methods and "mxnet" not in sys.modules
    return multiprocessing.get_context("fork" if fork else "spawn")


def init_pool_worker(parent_pid: int, initializer, initargs) -> None:
    """Every pool worker: dies with the parent (a killed build leaves no workers writing
    broken-pipe tracebacks), leaves SIGINT to the parent (which stops the pool), then
    runs ``initializer``."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer:
        initializer(*initargs)


@contextmanager
def ordered_map(func: Callable, tasks: Iterable, workers: int, initializer=None,
                initargs=()) -> Iterator:
    """Map func over tasks in order, in `workers` processes (in-process when 1)."""
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        yield map(func, tasks)
        return
    # Spawned workers import this module, so igc_mx: they never use MXNet, so they
    # start without importing it (NO_MXNET_ENV, see igc_mx/__init__.py).
    with environ(**{NO_MXNET_ENV: "1"}):
        pool = pool_context().Pool(workers, init_pool_worker,
                                   (os.getpid(), initializer, initargs))
    with pool:
        yield pool.imap(func, tasks)


def progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr,
                disable=quiet or not sys.stderr.isatty())


def tmp_path(out_dir: str, name: str) -> str:
    return os.path.join(out_dir, "." + name + TMP_SUFFIX)


def output_names() -> list[str]:
    return [f"{s}.{ext}" for s in SPLITS for ext in ("rec", "idx", "lst")] + [MANIFEST]


def remove_stale_temps(out_dir: str) -> None:
    for name in output_names():
        path = tmp_path(out_dir, name)
        if os.path.exists(path):
            os.remove(path)


@contextmanager
def naming_path(path: str) -> Iterator[None]:
    """Attach `path` to OSErrors that lack a filename (e.g. ENOSPC on write)."""
    try:
        yield
    except OSError as e:
        if not e.filename:
            e.filename = path
        raise


class HashingFile:
    """Binary output file that tracks SHA-256, size and the write offset."""

    def __init__(self, path: str):
        self.path = path
        with naming_path(path):
            self.file = open(path, "wb")  # noqa: SIM115 (closed by close() or abandon())
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        with naming_path(self.path):
            self.file.write(data)
        self.hash.update(data)
        self.size += len(data)

    def close(self) -> dict:
        with naming_path(self.path):
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        return {"bytes": self.size, "sha256": self.hash.hexdigest()}

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()


@dataclass
class SplitResult:
    count: int
    class_counts: list[int]
    skipped: list[dict]
    files: dict
    source_sha256: str | None


def write_split(name: str, split: Split, dataset: Dataset, recipe: Recipe, out_dir: str,
                args: argparse.Namespace) -> SplitResult:
    """Encode a split in parallel and write .rec/.idx/.lst (temp names) in order."""
    order = split_order(len(split), recipe.shuffle and name == "train", recipe.seed)
    chunk = 16 if split.paths is not None else 256
    outs = {}
    class_counts = [0] * dataset.num_classes
    skipped = []
    digests = np.zeros((len(split), 32), np.uint8) if split.paths is not None else None
    try:
        for ext in ("rec", "idx", "lst"):
            outs[ext] = HashingFile(tmp_path(out_dir, f"{name}.{ext}"))
        with ordered_map(encode_chunk, make_tasks(split, order, chunk), args.workers,
                         init_worker, (recipe,)) as results, \
                progress(len(split), name, args.quiet) as bar:
            for encoded_chunk in results:
                for item in encoded_chunk:
                    write_item(item, split, dataset, outs, class_counts, skipped, args.skip_bad)
                    if item.source_sha256 is not None:
                        digests[item.key] = np.frombuffer(item.source_sha256, np.uint8)
                bar.update(len(encoded_chunk))
        files = {f"{name}.{ext}": out.close() for ext, out in outs.items()}
    except BaseException:
        for out in outs.values():
            out.abandon()
        raise
    count = sum(class_counts)
    if count == 0:
        raise UserError(f"{name} split has no usable images")
    return SplitResult(count, class_counts, skipped, files, source_digest(split, digests))


def write_item(item: Encoded, split: Split, dataset: Dataset, outs: dict, class_counts: list[int],
               skipped: list[dict], skip_bad: bool) -> None:
    ref = split.refs[item.key]
    if item.framed is None:
        if not skip_bad:
            raise BadImage(f"{item.error} (pass --skip-bad to skip unreadable images and list "
                           "them in the manifest)")
        skipped.append({"key": item.key, "path": ref, "reason": item.error})
        return
    label = int(split.labels[item.key])
    if not 0 <= label < dataset.num_classes:
        raise UserError(f"{ref}: label {label} outside 0..{dataset.num_classes - 1}")
    outs["idx"].write(f"{item.key}\t{outs['rec'].size}\n".encode())
    outs["rec"].write(item.framed)
    outs["lst"].write(f"{item.key}\t{label:f}\t{ref}\n".encode())
    class_counts[label] += 1


def source_digest(split: Split, digests: np.ndarray | None) -> str | None:
    """SHA-256 over 'path<TAB>sha256-of-file' lines in canonical order (file sources).

    Files that cannot be read (no digest, all-zero row) are left out; files that were read
    but skipped (they do not decode or encode) are in.
    """
    if digests is None:
        return None
    h = hashlib.sha256()
    for key, digest in enumerate(digests):
        if digest.any():
            h.update(f"{split.refs[key]}\t{digest.tobytes().hex()}\n".encode())
    return h.hexdigest()


def opencv_codecs() -> dict:
    """Codec library versions of this OpenCV build (they decide the encoded bytes)."""
    wanted = ("ZLib:", "JPEG:", "PNG:")
    found = {}
    for line in cv2.getBuildInformation().splitlines():
        text = line.strip()
        if text.startswith(wanted):
            key, _, value = text.partition(":")
            found.setdefault(key.lower(), value.strip())
    return found


def tool_versions() -> dict:
    from importlib import metadata

    try:
        mxnet_version = metadata.version("mxnet")
    except metadata.PackageNotFoundError:
        mxnet_version = None
    return {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
            "opencv_codecs": opencv_codecs(), "mxnet": mxnet_version}


def build_manifest(args, dataset: Dataset, recipe: Recipe, results: dict[str, SplitResult]) -> dict:
    splits = {}
    for name, r in results.items():
        splits[name] = {"count": r.count, "class_counts": r.class_counts, "skipped": r.skipped,
                        "source_sha256": r.source_sha256, "files": r.files}
    return {
        "format": MANIFEST_FORMAT, "manifest_version": MANIFEST_VERSION,
        "dataset": dataset.name, "num_classes": dataset.num_classes, "classes": dataset.classes,
        "recipe": recipe.as_dict(), "source": dataset.source, "versions": tool_versions(),
        "record_format": RECORD_FORMAT,
        "command": regenerate_command(args, recipe), "splits": splits,
    }


def commit_outputs(out_dir: str, manifest: dict) -> None:
    """Rename temps to final names; manifest.json is removed first and written last."""
    manifest_tmp = tmp_path(out_dir, MANIFEST)
    with open(manifest_tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    final_manifest = os.path.join(out_dir, MANIFEST)
    if os.path.exists(final_manifest):
        os.remove(final_manifest)
    for name in output_names():
        os.replace(tmp_path(out_dir, name), os.path.join(out_dir, name))
    fsync_dir(out_dir)


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def out_dir_lock(out_dir: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(os.path.join(out_dir, LOCK_NAME), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another make_rec run is writing to {out_dir}") from None
        yield


def build(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    dataset = load_dataset(args)
    os.makedirs(args.out_dir, exist_ok=True)
    with out_dir_lock(args.out_dir):
        remove_stale_temps(args.out_dir)
        committed = False
        try:
            results = {name: write_split(name, dataset.splits[name], dataset, recipe,
                                         args.out_dir, args)
                       for name in SPLITS}
            commit_outputs(args.out_dir, build_manifest(args, dataset, recipe, results))
            committed = True
        finally:
            if not committed:
                remove_stale_temps(args.out_dir)
    if not args.quiet:
        for name, r in results.items():
            note = f", skipped {len(r.skipped)}" if r.skipped else ""
            print(f"{name}: {r.count} records -> {os.path.join(args.out_dir, name + '.rec')}{note}")
        print(f"manifest: {os.path.join(args.out_dir, MANIFEST)}")
    return 0


# --------------------------------------------------------------------------
# verify / stats
# --------------------------------------------------------------------------

def load_manifest(out_dir: str) -> dict:
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.isfile(path):
        raise UserError(f"{path} not found: {out_dir} is not a make_rec output folder "
                        "(or a build was interrupted)")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(f"{path}: format {found!r}, expected {MANIFEST_FORMAT!r}")
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise UserError(f"{path}: manifest_version {manifest.get('manifest_version')!r}, this "
                        f"igc-make-rec reads {MANIFEST_VERSION}")
    return manifest


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


def expected_shape_problem(shape: tuple, recipe: dict, dataset: str) -> str | None:
    if len(shape) != 3 or shape[2] != 3:
        return f"decoded shape {shape}, expected 3 channels"
    resize = recipe["resize_shorter_side"]
    if resize and min(shape[:2]) != resize:
        return f"decoded shape {shape}, expected shorter side {resize}"
    if not resize and dataset != "imagenet" and shape[:2] != (32, 32):
        return f"decoded shape {shape}, expected 32x32"
    return None


def check_images(name: str, chunks: Iterable, recipe: dict, workers: int,
                 dataset: str) -> list[str]:
    problems = []
    with ordered_map(check_chunk, chunks, workers) as results:
        for chunk in results:
            for key, problem, shape in chunk:
                problem = problem or expected_shape_problem(shape, recipe, dataset)
                if problem:
                    problems.append(f"{name} key {key}: {problem}")
    return problems


def verify_split(out_dir: str, name: str, info: dict, manifest: dict, workers: int,
                 decode: bool, recipe: Recipe | None = None) -> list[str]:
    """One sequential pass over the .rec: framing, headers vs .idx/.lst, checksum, and decoding;
    with ``recipe``, every image's header and the order of the records too."""
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
    rule = ImageRule(recipe, manifest["dataset"]) if recipe else None
    checker = RecordChecker(name, idx_rows, lst_rows, manifest["num_classes"], rule)
    with open(rec_path, "rb") as f:
        reader = HashingReader(f)
        chunks = checker.image_chunks(reader)
        if decode:
            decode_problems = check_images(name, chunks, manifest["recipe"], workers,
                                           manifest["dataset"])
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


def verify(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.out_dir)
    problems = check_fields(manifest, build_parser())
    if problems:   # the records cannot be checked against fields that do not hold
        recipe, checked = None, []
    else:
        recipe = recipe_of(manifest)
        checked = ["recipe", "order", "image headers"]
        for name, info in manifest["splits"].items():
            problems += verify_split(args.out_dir, name, info, manifest, args.workers,
                                     not args.no_decode, recipe)
        if not args.no_source:
            source_problems, source_note = check_source(manifest, args.out_dir, args.source)
            problems += source_problems
            checked.append(source_note)
    if problems:
        print(f"verify FAILED for {args.out_dir}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems[:50]:
            print(f"  {p}", file=sys.stderr)
        if len(problems) > 50:
            print(f"  ... and {len(problems) - 50} more", file=sys.stderr)
        return 1
    total = sum(info["count"] for info in manifest["splits"].values())
    print(f"verify OK: {args.out_dir}: {total} records, checksums match the manifest"
          + ("" if args.no_decode else ", every image decodes"))
    print("checked against the manifest: " + "; ".join(checked))
    built_with = manifest.get("versions", {}).get("opencv")
    if built_with != cv2.__version__:
        print(f"note: built with OpenCV {built_with}, this is {cv2.__version__}; a rebuild "
              "here may differ in bytes")
    return 0


def stats(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.out_dir)
    if args.split not in manifest["splits"]:
        raise UserError(f"--split {args.split!r}: expected one of {sorted(manifest['splits'])}")
    path = os.path.join(args.out_dir, f"{args.split}.rec")
    if not os.path.isfile(path):
        raise UserError(f"{path} not found")
    with open(path, "rb") as f:
        result = channel_statistics(image_chunks(f, args.limit), args.workers)
    result.update(dataset=manifest["dataset"], split=args.split)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{manifest['dataset']} {args.split}: {result['images']} images, "
              f"{result['pixels']} pixels per channel")
        print("mean (RGB, 0-255): " + ",".join(f"{v:.3f}" for v in result["mean_rgb"]))
        print("std  (RGB, 0-255): " + ",".join(f"{v:.3f}" for v in result["std_rgb"]))
    return 0


def image_chunks(stream: BinaryIO, limit: int = 0, size: int = 256) -> Iterator[list[bytes]]:
    """Image bytes of the first `limit` records (0 = all), in chunks."""
    chunk = []
    for seen, (_, payload) in enumerate(iter_records(stream)):
        if limit and seen >= limit:
            break
        chunk.append(unpack_image_record(payload)[3])
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def channel_statistics(chunks: Iterable[list[bytes]], workers: int) -> dict:
    """Exact population mean/std per RGB channel (integer accumulation)."""
    images, count, sums, squares = 0, 0, [0, 0, 0], [0, 0, 0]
    try:
        with ordered_map(channel_sums, chunks, workers) as results:
            for n_images, n, s, q in results:
                images += n_images
                count += n
                sums = [a + b for a, b in zip(sums, s, strict=True)]
                squares = [a + b for a, b in zip(squares, q, strict=True)]
    except ValueError as e:
        raise UserError(str(e)) from None
    if count == 0:
        raise UserError("no images to compute statistics on")
    mean = [s / count for s in sums]
    std = [((count * q - s * s) / (count * count)) ** 0.5
           for s, q in zip(sums, squares, strict=True)]
    return {"images": images, "pixels": count, "mean_rgb": mean, "std_rgb": std}


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def default_workers() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in DATASETS:
        p = sub.add_parser(name, help=f"build {name} train/test .rec files")
        p.add_argument("source", metavar="SOURCE")
        p.add_argument("out_dir", metavar="OUT_DIR")
        p.add_argument("--workers", type=int, default=default_workers(),
                       help="encoding processes (default: CPUs)")
        p.add_argument("--encoding", choices=("png", "jpg"), default=None,
                       help=f"image format (default {RECIPES[name]['encoding']})")
        p.add_argument("--quality", type=int, default=None, help="JPEG quality 1..100 (default 95)")
        p.add_argument("--png-compression", type=int, default=None,
                       help="PNG zlib level 0..9 (default 9)")
        p.add_argument("--resize", type=int, default=None,
                       help="shorter side in pixels, 0 keeps the size "
                            f"(default {RECIPES[name]['resize']})")
        p.add_argument("--interpolation", choices=sorted(INTERPOLATIONS), default="linear",
                       help="cv2.resize interpolation (default linear, as im2rec)")
        p.add_argument("--seed", type=int, default=0,
                       help="seed of the train-split shuffle (default 0)")
        p.add_argument("--no-shuffle", action="store_true",
                       help="keep train records in source order")
        p.add_argument("--skip-bad", action="store_true",
                       help="skip unreadable images and list them in the manifest")
        p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
        if name == "svhn":
            p.add_argument("--no-extra", action="store_true",
                           help="train split from train_32x32.mat only")
        if name == "imagenet":
            p.add_argument("--image-root", default=None,
                           help="base of relative paths in train.lst/val.lst")
        p.set_defaults(func=build, dataset=name)
    p = sub.add_parser("verify", help="check a built folder against its manifest")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--no-decode", action="store_true", help="skip decoding every image")
    p.add_argument("--source", help="where the build's source is now (default: the "
                                    "manifest's path)")
    p.add_argument("--no-source", action="store_true",
                   help="do not check the source (its files are read again)")
    p.set_defaults(func=verify)
    p = sub.add_parser("stats", help="per-channel mean/std (RGB, 0-255) of a split")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--split", default="train")
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--limit", type=int, default=0, help="use only the first N records (0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=stats)
    return parser


def os_error_message(e: OSError) -> str:
    where = f" ({e.filename})" if e.filename else ""
    if e.errno == errno.ENOSPC:
        return f"no space left on device{where}; free space or choose another OUT_DIR"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied{where}: {e.strerror}"
    return f"{e.strerror or e}{where}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM and SIGHUP are handled like Ctrl-C (SIGINT)
    with raise_on_signals(signal.SIGTERM, signal.SIGHUP):
        try:
            return args.func(args)
        except UserError as e:
            print(f"make_rec: error: {e}", file=sys.stderr)
        except OSError as e:
            print(f"make_rec: error: {os_error_message(e)}", file=sys.stderr)
        except (KeyboardInterrupt, Signalled) as e:
            signum = getattr(e, "signum", signal.SIGINT)
            print(f"make_rec: interrupted ({signal.Signals(signum).name}); no output file "
                  "was finalised", file=sys.stderr)
            return 128 + signum
    return 1


if __name__ == "__main__":
    sys.exit(main())
