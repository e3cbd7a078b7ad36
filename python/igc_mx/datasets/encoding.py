"""Reading, resizing and encoding images into framed records; ``encode_chunk`` runs in
the worker processes (``workers.worker_pool``)."""
from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass

import cv2
import numpy as np

from ..recordio import UserError, frame_record, pack_image_record
from .recipes import INTERPOLATIONS, Recipe


class BadImage(UserError):
    """An input image that cannot be read or decoded."""


_WORKER_RECIPE: Recipe | None = None


def init_worker(recipe: Recipe) -> None:
    """Worker initializer: one OpenCV thread per process, recipe kept global."""
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


def encode_image(image: np.ndarray, recipe: Recipe) -> bytes:
    """The encoded image (BGR or grey pixels); BadImage (without the source's name) when
    OpenCV cannot resize or encode it, e.g. a side beyond the encoder's limit (JPEG:
    65500 pixels)."""
    try:
        resized = resize_shorter_side(image, recipe.resize, recipe.interpolation)
        ok, buf = cv2.imencode("." + recipe.encoding, resized, recipe.encode_params())
    except cv2.error as e:
        found = re.search(r"error: \(-?\d+:[^)]*\) (.*?)(?: in function '[^']*')?$",
                          str(e).strip(), re.M)
        why = found.group(1) if found else "cv2.error"
        raise BadImage(f"cannot encode a {image.shape[1]}x{image.shape[0]} image as "
                       f"{recipe.encoding} ({why})") from None
    if not ok:
        raise BadImage(f"cannot encode a {resized.shape[1]}x{resized.shape[0]} image as "
                       f"{recipe.encoding} (cv2.imencode failed)")
    return buf.tobytes()


def opencv_pixels(pixels: np.ndarray) -> np.ndarray:
    """A source image as OpenCV encodes it: RGB (H, W, 3) as BGR, grey (H, W) as it is."""
    return np.ascontiguousarray(pixels[:, :, ::-1] if pixels.ndim == 3 else pixels)


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


def encode_one(kind: str, item, key: int, label: int, recipe: Recipe) -> Encoded:
    """One image: ``item`` is its pixels (kind 'pixels') or its path (kind 'files')."""
    digest = None
    try:
        if kind == "pixels":
            image = opencv_pixels(item)
        else:
            raw = read_image_file(item)
            digest = hashlib.sha256(raw).digest()
            image = decode_image(raw, item)
        try:
            framed = frame_record(pack_image_record(key, label, encode_image(image, recipe)))
        except UserError as e:   # BadImage, or a record past RecordIO's size limit
            where = item if kind == "files" else f"image {key}"
            raise BadImage(f"{where}: {e}") from None
    except BadImage as e:
        return Encoded(key, None, str(e), digest)
    return Encoded(key, framed, None, digest)


def encode_chunk(task: tuple) -> list[Encoded]:
    """Encode one ordered chunk: ('pixels', keys, labels, pixel array) or
    ('files', keys, labels, paths)."""
    kind, keys, labels, data = task
    return [encode_one(kind, item, int(key), int(label), _WORKER_RECIPE)
            for key, label, item in zip(keys, labels, data, strict=True)]
