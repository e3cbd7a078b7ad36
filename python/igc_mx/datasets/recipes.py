"""The datasets ``igc-make-rec`` builds, one row each (``DATASETS``), and the recipe that
decides the bytes of a build (``Recipe``: the manifest's ``recipe`` field).

To add a dataset: write a reader in ``igc_mx/datasets/readers/`` (a function from SOURCE,
and the row's options, to a ``Dataset``) and add its row here. The command line, the
build, the manifest, ``verify`` and ``stats`` all follow from the row.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from ..recordio import UserError
from .dataset import Dataset
from .readers import cifar, idx, imagenet, svhn

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Option:
    """A build option only some datasets have; passed to the reader as ``dest``."""
    flag: str          # e.g. "--no-extra"
    dest: str          # the reader's keyword argument
    help: str
    takes_value: bool  # False: a switch


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its reader and what every build of it holds."""
    name: str
    read: Callable[..., Dataset]   # read(source, **options) -> Dataset
    source: str                    # what SOURCE is (--help)
    num_classes: int | None        # None: as many as the source has
    image_size: tuple[int, int] | None   # (height, width) of every image; None: any
    channels: int                  # 3: colour, stored as RGB; 1: grey
    encoding: str                  # default --encoding: png (lossless) or jpg
    resize: int = 0                # default --resize: shorter side, 0 keeps the size
    options: tuple[Option, ...] = ()


SMALL = {"image_size": (32, 32), "channels": 3, "encoding": "png"}
IDX_GREY = {"image_size": (28, 28), "channels": 1, "encoding": "png", "num_classes": 10}
DATASETS = {spec.name: spec for spec in (
    DatasetSpec("cifar10", partial(cifar.load_cifar, "cifar10"),
                "cifar-10-python.tar.gz, or the folder cifar-10-batches-py/ (or one holding "
                "either)", num_classes=10, **SMALL),
    DatasetSpec("cifar100", partial(cifar.load_cifar, "cifar100"),
                "cifar-100-python.tar.gz, or the folder cifar-100-python/ (or one holding "
                "either)", num_classes=100, **SMALL),
    DatasetSpec("svhn", svhn.load_svhn,
                "a folder with train_32x32.mat, extra_32x32.mat, test_32x32.mat",
                num_classes=10, **SMALL,
                options=(Option("--no-extra", "no_extra",
                                "train split from train_32x32.mat only", False),)),
    DatasetSpec("imagenet", imagenet.load_imagenet,
                "a folder with train/<class>/*.JPEG and val/<class>/*.JPEG, or with "
                "train.lst and val.lst", num_classes=None, image_size=None, channels=3,
                encoding="jpg", resize=480,
                options=(Option("--image-root", "image_root",
                                "base of relative paths in train.lst/val.lst", True),)),
    DatasetSpec("fashion-mnist", partial(idx.load_idx, "fashion-mnist", FASHION_MNIST_CLASSES),
                "a folder with the four IDX files (.gz or unpacked)", **IDX_GREY),
    DatasetSpec("mnist", partial(idx.load_idx, "mnist", DIGITS),
                "a folder with the four IDX files (.gz or unpacked)", **IDX_GREY),
)}

DEFAULT_QUALITY = 95
DEFAULT_PNG_COMPRESSION = 9
INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}
SHUFFLE_ALGORITHM = "numpy.random.Generator(numpy.random.PCG64(seed)).permutation(n)"
RECORD_FORMAT = {"header": "mxnet.recordio.IRHeader(flag=0, label=float(class), id=key, id2=0)",
                 "key": "index of the image in canonical source order",
                 "idx_line": "key<TAB>byte offset",
                 "lst_line": "key<TAB>label<TAB>source"}
CHANNEL_TEXT = {
    3: {"decode_flag": "cv2.IMREAD_COLOR (3-channel BGR)",
        "channel_order": "pixels handed to cv2.imencode as BGR, so files hold true colours "
                         "(decoders return RGB/BGR as usual)"},
    1: {"decode_flag": "cv2.IMREAD_GRAYSCALE (1 channel)",
        "channel_order": "grey: one channel, handed to cv2.imencode as it is"},
}


@dataclass(frozen=True)
class Recipe:
    encoding: str
    quality: int
    png_compression: int
    resize: int
    interpolation: str
    shuffle: bool
    seed: int
    channels: int = 3

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
            **CHANNEL_TEXT[self.channels],
            "shuffle_train": self.shuffle,
            "shuffle_test": False,
            "seed": self.seed,
            "shuffle_algorithm": SHUFFLE_ALGORITHM,
        }


def make_recipe(dataset: str, encoding: str | None = None, quality: int | None = None,
                png_compression: int | None = None, resize: int | None = None,
                interpolation: str = "linear", shuffle: bool = True, seed: int = 0) -> Recipe:
    """The recipe of ``dataset`` with the given settings (None: the dataset's default);
    UserError names a setting out of range, or one that the encoding does not use."""
    spec = DATASETS[dataset]
    encoding = encoding or spec.encoding
    if encoding == "png" and quality is not None:
        raise UserError(f"--quality {quality} applies to JPEG; with --encoding png use "
                        "--png-compression 0..9")
    if encoding == "jpg" and png_compression is not None:
        raise UserError("--png-compression applies to PNG; with --encoding jpg use "
                        "--quality 1..100")
    quality = DEFAULT_QUALITY if quality is None else quality
    png_compression = DEFAULT_PNG_COMPRESSION if png_compression is None else png_compression
    resize = spec.resize if resize is None else resize
    if not 1 <= quality <= 100:
        raise UserError(f"--quality {quality}: expected 1..100")
    if not 0 <= png_compression <= 9:
        raise UserError(f"--png-compression {png_compression}: expected 0..9")
    if resize < 0:
        raise UserError(f"--resize {resize}: expected 0 (keep size) or a positive "
                        "shorter-side length")
    if seed < 0:
        raise UserError(f"--seed {seed}: expected a non-negative integer")
    return Recipe(encoding, quality, png_compression, resize, interpolation, shuffle, seed,
                  spec.channels)


def split_order(n: int, shuffle: bool, seed: int) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.Generator(np.random.PCG64(seed)).permutation(n)
