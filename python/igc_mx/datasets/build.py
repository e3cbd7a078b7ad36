"""Building a dataset: the splits encoded in parallel and written in order, with the
manifest, as one set of files committed together (``igc_mx.atomic.atomic_paths``), under
a lock on OUT_DIR."""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..atomic import atomic_paths
from ..recordio import UserError
from .command import BuildRequest
from .dataset import SPLITS, Dataset, Split, escaped
from .encoding import BadImage, Encoded, encode_chunk, init_worker
from .manifest import LOCK_NAME, MANIFEST, build_manifest, output_names, write_manifest
from .recipes import split_order
from .workers import InProcess, OrderedPool, worker_pool


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
        try:   # not naming_path: three calls per record, where a context manager is costly
            self.file.write(data)
        except OSError as e:
            e.filename = e.filename or self.path
            raise
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

    def manifest_entry(self) -> dict:
        return {"count": self.count, "class_counts": self.class_counts, "skipped": self.skipped,
                "source_sha256": self.source_sha256, "files": self.files}


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> bool:
        return False

    def update(self, n: int) -> None:
        pass


def progress(total: int, desc: str, quiet: bool):
    """A progress bar on a terminal; nothing otherwise (no tqdm thread in the process
    that forks the workers)."""
    if quiet or not sys.stderr.isatty():
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr)


def make_tasks(split: Split, order: np.ndarray, chunk: int) -> Iterator[tuple]:
    for start in range(0, len(order), chunk):
        keys = order[start:start + chunk]
        labels = split.labels[keys]
        if split.paths is not None:
            yield "files", keys, labels, [split.paths[k] for k in keys]
        else:
            yield "pixels", keys, labels, split.take_pixels(keys)


def write_split(name: str, split: Split, num_classes: int, request: BuildRequest,
                temps: dict[str, str], pool: OrderedPool | InProcess) -> SplitResult:
    """Encode a split in ``pool`` and write its .rec/.idx/.lst to ``temps`` (final name ->
    temporary path) in order."""
    recipe = request.recipe
    order = split_order(len(split), recipe.shuffle and name == "train", recipe.seed)
    chunk = 16 if split.paths is not None else 256
    outs = {}
    class_counts = [0] * num_classes
    skipped = []
    digests = np.zeros((len(split), 32), np.uint8) if split.paths is not None else None
    try:
        for ext in ("rec", "idx", "lst"):
            outs[ext] = HashingFile(temps[f"{name}.{ext}"])
        with progress(len(split), name, request.quiet) as bar:
            for encoded_chunk in pool.imap(make_tasks(split, order, chunk)):
                for item in encoded_chunk:
                    write_item(item, split, num_classes, outs, class_counts, skipped,
                               request.skip_bad)
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


def write_item(item: Encoded, split: Split, num_classes: int, outs: dict,
               class_counts: list[int], skipped: list[dict], skip_bad: bool) -> None:
    ref = split.refs[item.key]
    if item.framed is None:
        if not skip_bad:
            raise BadImage(f"{item.error} (pass --skip-bad to skip unreadable images and list "
                           "them in the manifest)")
        skipped.append({"key": item.key, "path": ref, "reason": item.error})
        return
    label = int(split.labels[item.key])
    if not 0 <= label < num_classes:
        raise UserError(f"{ref}: label {label} outside 0..{num_classes - 1}")
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


def check_out_dir(out_dir: str, source: str, reads: list[str]) -> None:
    """UserError when writing to ``out_dir`` would change the source: OUT_DIR is SOURCE,
    lies in a folder the build reads (a new folder there is a new class), or an output
    file would replace a file the build reads."""
    out = os.path.realpath(out_dir)
    if out == os.path.realpath(source):
        raise UserError(f"OUT_DIR {out_dir} is SOURCE: the records would be written among "
                        "the files they are made from; choose another OUT_DIR")
    outputs = {os.path.join(out, name) for name in output_names() + [LOCK_NAME]}
    for path in reads:
        real = os.path.realpath(path)
        if os.path.isdir(real) and os.path.commonpath([out, real]) == real:
            raise UserError(f"OUT_DIR {out_dir} lies inside {path}, which the build reads "
                            "(its images and class folders); choose another OUT_DIR")
        if real in outputs:
            raise UserError(f"OUT_DIR {out_dir}: the build would overwrite {path}, one of its "
                            "source files; choose another OUT_DIR")


def class_count(request: BuildRequest, dataset: Dataset) -> int:
    """The dataset row's number of classes; for a source that decides it, its class folders,
    or the largest label + 1."""
    if request.spec.num_classes is not None:
        return request.spec.num_classes
    if dataset.classes is not None:
        return len(dataset.classes)
    return int(max(max(s.labels, default=-1) for s in dataset.splits.values())) + 1


def build(request: BuildRequest) -> int:
    """Build ``request``: OUT_DIR gets the record files and the manifest, all at once."""
    dataset = request.spec.read(request.source, **dict(request.options))
    num_classes = class_count(request, dataset)
    check_out_dir(request.out_dir, request.source, dataset.reads)
    os.makedirs(request.out_dir, exist_ok=True)
    names = output_names()
    with out_dir_lock(request.out_dir), \
            atomic_paths(*(os.path.join(request.out_dir, n) for n in names)) as paths, \
            worker_pool(encode_chunk, request.workers, init_worker, (request.recipe,)) as pool:
        temps = dict(zip(names, paths, strict=True))
        results = {name: write_split(name, dataset.splits[name], num_classes, request, temps,
                                     pool)
                   for name in SPLITS}
        splits = {name: r.manifest_entry() for name, r in results.items()}
        write_manifest(temps[MANIFEST], build_manifest(request, dataset, num_classes, splits))
    if not request.quiet:
        for name, r in results.items():
            note = f", skipped {len(r.skipped)}" if r.skipped else ""
            print(f"{name}: {r.count} records -> "
                  f"{escaped(os.path.join(request.out_dir, name + '.rec'))}{note}")
        print(f"manifest: {escaped(os.path.join(request.out_dir, MANIFEST))}")
    return 0
