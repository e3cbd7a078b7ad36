"""The recipe of ``igc-make-rec``: what decides the bytes of a build, and the manifest's
record of it (its ``recipe`` and ``command`` fields). Shared by building and ``verify``.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass

import cv2
import numpy as np

from ..recordio import UserError

DATASETS = ("cifar10", "cifar100", "svhn", "imagenet")
# Recipe defaults per dataset. 32x32 sets are stored losslessly; ImageNet
# follows the IGCNets authors: shorter side 480, JPEG quality 95.
RECIPES = {
    "cifar10": {"encoding": "png", "quality": 95, "png_compression": 9, "resize": 0},
    "cifar100": {"encoding": "png", "quality": 95, "png_compression": 9, "resize": 0},
    "svhn": {"encoding": "png", "quality": 95, "png_compression": 9, "resize": 0},
    "imagenet": {"encoding": "jpg", "quality": 95, "png_compression": 9, "resize": 480},
}
INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}
SHUFFLE_ALGORITHM = "numpy.random.Generator(numpy.random.PCG64(seed)).permutation(n)"


RECORD_FORMAT = {"header": "mxnet.recordio.IRHeader(flag=0, label=float(class), id=key, id2=0)",
                 "key": "index of the image in canonical source order",
                 "idx_line": "key<TAB>byte offset",
                 "lst_line": "key<TAB>label<TAB>source"}


@dataclass(frozen=True)
class Recipe:
    encoding: str
    quality: int
    png_compression: int
    resize: int
    interpolation: str
    shuffle: bool
    seed: int

    def encode_params(self) -> list[int]:
        """Every encoder setting spelled out, so OpenCV defaults cannot drift."""
        if self.encoding == "png":
            return [cv2.IMWRITE_PNG_COMPRESSION, self.png_compression,
                    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_DEFAULT]
        return [cv2.IMWRITE_JPEG_QUALITY, self.quality,
                cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
                cv2.IMWRITE_JPEG_OPTIMIZE, 0,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]

    def as_dict(self) -> dict:
        return {
            "encoding": self.encoding,
            "jpeg_quality": self.quality if self.encoding == "jpg" else None,
            "jpeg_settings": "baseline, not optimized, 4:2:0" if self.encoding == "jpg" else None,
            "png_compression": self.png_compression if self.encoding == "png" else None,
            "png_strategy": "default" if self.encoding == "png" else None,
            "opencv_encode_params": self.encode_params(),
            "resize_shorter_side": self.resize,
            "resize_rule": "shorter side -> S, longer -> floor(longer*S/shorter) (as MXNet im2rec)",
            "interpolation": self.interpolation,
            "decode_flag": "cv2.IMREAD_COLOR (3-channel BGR)",
            "channel_order": "pixels handed to cv2.imencode as BGR, so files hold true colours "
                             "(decoders return RGB/BGR as usual)",
            "shuffle_train": self.shuffle,
            "shuffle_test": False,
            "seed": self.seed,
            "shuffle_algorithm": SHUFFLE_ALGORITHM,
        }


def split_order(n: int, shuffle: bool, seed: int) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.Generator(np.random.PCG64(seed)).permutation(n)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    defaults = RECIPES[args.dataset]
    encoding = args.encoding or defaults["encoding"]
    if encoding == "png" and args.quality is not None:
        raise UserError(f"--quality {args.quality} applies to JPEG; with --encoding png use "
                        "--png-compression 0..9")
    if encoding == "jpg" and args.png_compression is not None:
        raise UserError("--png-compression applies to PNG; with --encoding jpg use "
                        "--quality 1..100")
    quality = defaults["quality"] if args.quality is None else args.quality
    png_compression = (defaults["png_compression"] if args.png_compression is None
                       else args.png_compression)
    resize = defaults["resize"] if args.resize is None else args.resize
    if not 1 <= quality <= 100:
        raise UserError(f"--quality {quality}: expected 1..100")
    if not 0 <= png_compression <= 9:
        raise UserError(f"--png-compression {png_compression}: expected 0..9")
    if resize < 0:
        raise UserError(f"--resize {resize}: expected 0 (keep size) or a positive "
                        "shorter-side length")
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: expected a non-negative integer")
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: expected at least 1")
    return Recipe(encoding, quality, png_compression, resize, args.interpolation,
                  not args.no_shuffle, args.seed)


def regenerate_command(args: argparse.Namespace, recipe: Recipe) -> str:
    """The igc-make-rec command line that builds ``args.out_dir`` again (quoted for a shell)."""
    parts = ["igc-make-rec", args.dataset, args.source, args.out_dir, "--encoding", recipe.encoding]
    parts += ["--quality", str(recipe.quality)] if recipe.encoding == "jpg" else \
             ["--png-compression", str(recipe.png_compression)]
    parts += ["--resize", str(recipe.resize), "--interpolation", recipe.interpolation,
              "--seed", str(recipe.seed)]
    if not recipe.shuffle:
        parts.append("--no-shuffle")
    if args.dataset == "svhn" and args.no_extra:
        parts.append("--no-extra")
    if getattr(args, "image_root", None):
        parts += ["--image-root", args.image_root]
    if args.skip_bad:
        parts.append("--skip-bad")
    return shlex.join(parts)
