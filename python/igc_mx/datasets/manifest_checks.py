"""What ``igc-make-rec verify`` checks beyond the checksums: that every field of a manifest
the build depends on agrees with the manifest's other fields, its record files and, when
it can be found, its source.

- the recipe: each field within its range and all of them what the recipe they describe
  writes (``Recipe.as_dict``), and the ``command`` a command line that builds that recipe
  from that source;
- the order of the records: the seed's permutation (``split_order``) for a shuffled
  split, the source order otherwise, less the skipped images;
- every image's header (read without decoding, so also under ``--no-decode``): the
  recipe's format, the dataset's channels, its size (``resize_shorter_side``, or the
  dataset's image size), and the encoder settings a header shows (JPEG: quantization
  tables of the quality, baseline, 4:2:0, standard Huffman tables; PNG: 8-bit RGB or
  grey, not interlaced, the zlib level class);
- the source: the size and SHA-256 of its files, each split's ``source_sha256`` and the
  class folders, when the source is where the manifest says (or at ``--source``).
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex

import cv2
import numpy as np

from ..image_headers import ImageHeaderError, image_info
from ..recordio import UserError
from .command import parse_build_command
from .dataset import SPLITS, sha256_file
from .readers.cifar import CIFAR_LAYOUT, locate_cifar
from .recipes import DATASETS, RECORD_FORMAT, DatasetSpec, Recipe, make_recipe, split_order

TOP_FIELDS = {"format", "manifest_version", "dataset", "num_classes", "classes", "recipe",
              "source", "versions", "record_format", "command", "splits"}
SPLIT_FIELDS = {"count", "class_counts", "skipped", "source_sha256", "files"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _is_int(value, low=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def recipe_of(manifest: dict) -> Recipe:
    """The Recipe the manifest's ``recipe`` field describes; UserError if it describes none
    (a value out of range, or fields that disagree)."""
    fields = manifest.get("recipe")
    if not isinstance(fields, dict) or manifest.get("dataset") not in DATASETS:
        raise UserError("recipe: not a recipe of a known dataset")
    encoding, interpolation = fields.get("encoding"), fields.get("interpolation")
    if encoding not in ("png", "jpg") or interpolation not in ("linear", "area", "cubic"):
        raise UserError(f"recipe: encoding {encoding!r} / interpolation "
                        f"{interpolation!r} unknown")
    values = {"quality": fields.get("jpeg_quality") if encoding == "jpg" else None,
              "png_compression": fields.get("png_compression") if encoding == "png" else None,
              "resize": fields.get("resize_shorter_side"), "seed": fields.get("seed")}
    for name, value in values.items():
        if value is not None and not _is_int(value, -2 ** 63):
            raise UserError(f"recipe: {name} {value!r} is not an integer")
    if values["resize"] is None or values["seed"] is None:
        raise UserError("recipe: resize_shorter_side or seed missing")
    recipe = make_recipe(manifest["dataset"], encoding, interpolation=interpolation,
                         shuffle=fields.get("shuffle_train") is not False, **values)
    if recipe.as_dict() != fields:
        differ = sorted(k for k in set(fields) | set(recipe.as_dict())
                        if fields.get(k, ...) != recipe.as_dict().get(k, ...))
        raise UserError(f"recipe: fields {', '.join(differ)} disagree with the recipe the "
                        "others describe")
    return recipe


def check_fields(manifest: dict) -> list[str]:
    """Problems of the manifest's own fields: missing or unknown ones, values out of range,
    and fields that disagree with each other (recipe, command, counts)."""
    problems = []
    missing, unknown = TOP_FIELDS - set(manifest), set(manifest) - TOP_FIELDS
    if missing:
        problems.append(f"manifest lacks {', '.join(sorted(missing))}")
    if unknown:
        problems.append(f"manifest has unknown fields {', '.join(sorted(unknown))}")
    dataset, num_classes = manifest.get("dataset"), manifest.get("num_classes")
    if dataset not in DATASETS:
        return problems + [f"dataset {dataset!r}: expected one of {', '.join(DATASETS)}"]
    expected = DATASETS[dataset].num_classes
    if not _is_int(num_classes, 1) or (expected or num_classes) != num_classes:
        problems.append(f"num_classes {num_classes!r} is not {dataset}'s")
    classes = manifest.get("classes")
    if classes is not None and (not isinstance(classes, list) or len(classes) != num_classes
                                or not all(isinstance(c, str) for c in classes)):
        problems.append(f"classes: expected {num_classes} names or null")
    if manifest.get("record_format") != RECORD_FORMAT:
        problems.append("record_format differs from the records igc-make-rec writes")
    try:
        recipe = recipe_of(manifest)
    except UserError as e:
        return problems + [str(e)]
    problems += _check_command(manifest, recipe)
    problems += _check_splits(manifest)
    source = manifest.get("source")
    if not (isinstance(source, dict) and isinstance(source.get("path"), str)
            and source.get("kind") in ("archive", "folder", "lst", "folders")
            and isinstance(source.get("files"), list)
            and all(isinstance(f, dict) and isinstance(f.get("name"), str)
                    and _is_int(f.get("bytes")) and SHA256.match(str(f.get("sha256")))
                    for f in source["files"])):
        problems.append("source: expected kind, path and files [{name, bytes, sha256}]")
    return problems


def _check_command(manifest: dict, recipe: Recipe) -> list[str]:
    command = manifest.get("command")
    try:
        request = parse_build_command(command)
    except ValueError as e:
        return [str(e)]
    problems = []
    source = manifest.get("source")
    source = source if isinstance(source, dict) else {}
    if request.dataset != manifest["dataset"] or request.source != source.get("path"):
        problems.append("command builds another dataset or source than the manifest names")
    if request.recipe != recipe:
        problems.append("command builds another recipe than the manifest's recipe")
    splits = manifest.get("splits")
    skipped = isinstance(splits, dict) and any(isinstance(s, dict) and s.get("skipped")
                                               for s in splits.values())
    if skipped and not request.skip_bad:
        problems.append("images were skipped, but command lacks --skip-bad")
    if manifest["dataset"] == "svhn":
        files = source.get("files")
        names = [f.get("name") for f in (files if isinstance(files, list) else [])
                 if isinstance(f, dict)]
        if ("extra_32x32.mat" in names) == bool(dict(request.options).get("no_extra")):
            problems.append("command's --no-extra disagrees with the source files")
    return problems


def _check_splits(manifest: dict) -> list[str]:
    splits, num_classes = manifest.get("splits"), manifest.get("num_classes")
    if not isinstance(splits, dict) or sorted(splits) != sorted(SPLITS):
        return [f"splits: expected {', '.join(SPLITS)}"]
    problems = []
    for name, info in splits.items():
        if not isinstance(info, dict) or set(info) != SPLIT_FIELDS:
            problems.append(f"{name}: expected the fields {', '.join(sorted(SPLIT_FIELDS))}")
            continue
        count, counts, skipped = info["count"], info["class_counts"], info["skipped"]
        if not _is_int(count, 1) or not isinstance(counts, list) or len(counts) != num_classes \
                or not all(_is_int(c) for c in counts) or sum(counts) != count:
            problems.append(f"{name}: count and class_counts disagree")
        if not isinstance(skipped, list) or not all(
                isinstance(s, dict) and set(s) == {"key", "path", "reason"} and _is_int(s["key"])
                for s in skipped):
            problems.append(f"{name}: skipped: expected [{{key, path, reason}}]")
        elif len({s["key"] for s in skipped}) != len(skipped) or (
                _is_int(count) and any(s["key"] >= count + len(skipped) for s in skipped)):
            problems.append(f"{name}: skipped keys repeat or lie outside the source")
        if info["source_sha256"] is not None and not SHA256.match(str(info["source_sha256"])):
            problems.append(f"{name}: source_sha256 is not a SHA-256")
        files = info["files"]
        if not isinstance(files, dict) or sorted(files) != sorted(
                f"{name}.{e}" for e in ("rec", "idx", "lst")) or not all(
                isinstance(f, dict) and _is_int(f.get("bytes"))
                and SHA256.match(str(f.get("sha256"))) for f in files.values()):
            problems.append(f"{name}: files: expected {name}.rec/.idx/.lst with bytes and sha256")
    return problems


def expected_keys(manifest: dict, name: str) -> list[int]:
    """The keys of split ``name`` in the order its records must have."""
    info, recipe = manifest["splits"][name], recipe_of(manifest)
    skipped = {s["key"] for s in info["skipped"]}
    order = split_order(info["count"] + len(skipped), recipe.shuffle and name == "train",
                        recipe.seed)
    return [int(k) for k in order if int(k) not in skipped]


def order_problem(name: str, keys: list[int], expected: list[int], seed: int) -> str | None:
    if keys == expected:
        return None
    for i, (got, want) in enumerate(zip(keys, expected, strict=False)):
        if got != want:
            return (f"{name}.rec: record {i} has key {got}, the recipe's order (seed {seed}) "
                    f"puts key {want} there")
    return f"{name}.rec: {len(keys)} records, the recipe's order has {len(expected)}"


class ImageRule:
    """What every image's header must show for ``recipe``: compared with the header of a
    reference image that this OpenCV encodes with the recipe's settings (quantization and
    Huffman tables, sampling and process for JPEG; the PNG format, colour type and zlib
    level), in the dataset's channels."""

    def __init__(self, recipe: Recipe, spec: DatasetSpec):
        self.recipe, self.spec = recipe, spec
        shape = (16, 16, 3) if spec.channels == 3 else (16, 16)
        gradient = np.arange(int(np.prod(shape)), dtype=np.uint16).reshape(shape) % 251
        ok, buf = cv2.imencode("." + recipe.encoding, gradient.astype(np.uint8),
                               recipe.encode_params())
        self.reference = image_info(buf.tobytes())
        keys = (("process", "components", "quant", "huffman") if recipe.encoding == "jpg"
                else ("bit_depth", "color_type", "interlace", "zlib_level"))
        self.settings = {k: self.reference[k] for k in keys}

    def problem(self, image: bytes) -> str | None:
        try:
            info = image_info(image)
        except ImageHeaderError as e:
            return f"image header: {e}"
        if info["format"] != self.recipe.encoding:
            return f"image is {info['format']}, the recipe encodes {self.recipe.encoding}"
        differ = [k for k, v in self.settings.items() if info.get(k) != v]
        if differ:
            return (f"image header's {', '.join(differ)} differ from what the recipe's "
                    f"{self.recipe.encoding} settings write")
        width, height = info["width"], info["height"]
        if self.recipe.resize and min(width, height) != self.recipe.resize:
            return f"image is {width}x{height}, the recipe's shorter side is {self.recipe.resize}"
        size = self.spec.image_size
        if not self.recipe.resize and size and (height, width) != size:
            return f"image is {width}x{height}, expected {size[1]}x{size[0]}"
        return None


def _file_problems(paths_and_records: list[tuple[str, dict]]) -> list[str]:
    problems = []
    for path, record in paths_and_records:
        if not os.path.isfile(path):
            problems.append(f"source file {path} is missing")
        elif os.path.getsize(path) != record["bytes"]:
            problems.append(f"source file {path}: {os.path.getsize(path)} bytes, manifest says "
                            f"{record['bytes']}")
        elif sha256_file(path) != record["sha256"]:
            problems.append(f"source file {path}: SHA-256 differs from the manifest")
    return problems


def split_refs(out_dir: str, name: str, info: dict) -> list[tuple[int, str]]:
    """(key, source path) of every image of split ``name``: its .lst lines and its
    skipped images."""
    refs = [(s["key"], s["path"]) for s in info["skipped"]]
    with open(os.path.join(out_dir, f"{name}.lst"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                key, _, ref = line.rstrip("\n").split("\t")
                refs.append((int(key), ref))
    return sorted(refs)


def _source_file_problems(manifest: dict, path: str) -> list[str]:
    """Problems of the source's files (sizes, SHA-256) and class folders."""
    kind, dataset = manifest["source"]["kind"], manifest["dataset"]
    files = manifest["source"]["files"]
    problems = []
    if kind == "archive":
        archive = path if os.path.isfile(path) else os.path.join(path, files[0]["name"])
        problems += _file_problems([(archive, files[0])])
    elif kind == "folder" and dataset in CIFAR_LAYOUT:
        folder = locate_cifar(dataset, path)[1]
        problems += _file_problems([(os.path.join(folder, f["name"]), f) for f in files])
    elif kind in ("folder", "lst"):
        problems += _file_problems([(os.path.join(path, f["name"]), f) for f in files])
    if kind == "folders" and manifest.get("classes") is not None:
        train = os.path.join(path, "train")
        found = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d))) \
            if os.path.isdir(train) else []
        if found != manifest["classes"]:
            problems.append(f"source {train}: class folders differ from the manifest's classes")
    return problems


def _image_digest_problems(manifest: dict, out_dir: str, path: str) -> list[str]:
    """Problems of an image-file source: each split's ``source_sha256``, read again."""
    root = path
    argv = shlex.split(manifest["command"])
    if manifest["source"]["kind"] == "lst" and "--image-root" in argv[:-1]:
        root = argv[argv.index("--image-root") + 1]
    problems = []
    for name, info in manifest["splits"].items():
        digest = hashlib.sha256()
        for _, ref in split_refs(out_dir, name, info):
            image = ref if os.path.isabs(ref) else os.path.join(root, ref)
            try:
                digest.update(f"{ref}\t{sha256_file(image)}\n".encode())
            except OSError:
                continue   # unreadable files are not part of the digest
        if digest.hexdigest() != info["source_sha256"]:
            problems.append(f"{name}: the source images' SHA-256 differs from the "
                            "manifest's source_sha256")
    return problems


def check_source(manifest: dict, out_dir: str, source: str | None) -> tuple[list[str], str]:
    """(problems, what was checked) of the source against the manifest: its files' sizes
    and SHA-256, the class folders, and each split's ``source_sha256`` (for image-file
    sources, read again). A source that is not where the manifest (or ``source``) says
    is not checked."""
    path = source or manifest["source"]["path"]
    if not os.path.exists(path):
        return [], f"source not found at {path}, not checked (--source PATH checks it)"
    try:
        problems = _source_file_problems(manifest, path)
    except UserError as e:
        return [str(e)], "source"
    if manifest["source"]["kind"] in ("lst", "folders"):
        problems += _image_digest_problems(manifest, out_dir, path)
    return problems, f"source {path}"
