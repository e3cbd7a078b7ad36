"""``manifest.json``: what a build wrote and how (recipe, tool versions, source files,
per-split counts and checksums, the command that rebuilds it), and reading it back."""
from __future__ import annotations

import json
import os
import platform

import cv2
import numpy as np

from ..recordio import UserError
from .command import BuildRequest, regenerate_command
from .dataset import SPLITS, Dataset
from .recipes import RECORD_FORMAT

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "igc-mx/make_rec"
MANIFEST_VERSION = 1
LOCK_NAME = ".make_rec.lock"


def output_names() -> list[str]:
    """The files of a build, the manifest last (it is written last)."""
    return [f"{s}.{ext}" for s in SPLITS for ext in ("rec", "idx", "lst")] + [MANIFEST]


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


def build_manifest(request: BuildRequest, dataset: Dataset, num_classes: int,
                   splits: dict[str, dict]) -> dict:
    return {
        "format": MANIFEST_FORMAT, "manifest_version": MANIFEST_VERSION,
        "dataset": request.dataset, "num_classes": num_classes, "classes": dataset.classes,
        "recipe": request.recipe.as_dict(), "source": dataset.source, "versions": tool_versions(),
        "record_format": RECORD_FORMAT,
        "command": regenerate_command(request), "splits": splits,
    }


def write_manifest(path: str, manifest: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


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
