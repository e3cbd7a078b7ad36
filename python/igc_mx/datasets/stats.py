"""``igc-make-rec stats``: the exact per-channel mean and std (0-255 scale) of a split,
over every pixel, decoded as ``mx.io.ImageRecordIter`` decodes them with ``data_shape``
(channels, H, W): colour datasets as RGB, grey ones as one channel."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import cv2
import numpy as np

from ..recordio import UserError, iter_records, unpack_image_record
from .manifest import load_manifest
from .recipes import DATASETS
from .workers import worker_pool

CHANNEL_NAMES = {3: "rgb", 1: "grey"}
DECODE_FLAGS = {3: cv2.IMREAD_COLOR, 1: cv2.IMREAD_GRAYSCALE}


def channel_sums(task: tuple[int, list[bytes]]) -> tuple[int, int, list[int], list[int]]:
    """(images, pixel count, per-channel sum, per-channel sum of squares), channels in RGB
    order (runs in the workers)."""
    channels, images = task
    cv2.setNumThreads(1)
    count, sums, squares = 0, [0] * channels, [0] * channels
    for image_bytes in images:
        decoded = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), DECODE_FLAGS[channels])
        if decoded is None:
            raise ValueError("an image does not decode; run `verify` for details")
        pixels = decoded.reshape(-1, channels)[:, ::-1].astype(np.int64)   # BGR -> RGB
        count += pixels.shape[0]
        for c in range(channels):
            channel = pixels[:, c]
            sums[c] += int(channel.sum())
            squares[c] += int((channel * channel).sum())
    return len(images), count, sums, squares


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


def channel_statistics(chunks: Iterable[list[bytes]], channels: int, workers: int) -> dict:
    """Exact population mean/std per channel (integer accumulation): {images, pixels,
    mean_rgb, std_rgb} for colour, {images, pixels, mean_grey, std_grey} for grey."""
    images, count, sums, squares = 0, 0, [0] * channels, [0] * channels
    try:
        with worker_pool(channel_sums, workers) as pool:
            for n_images, n, s, q in pool.imap((channels, c) for c in chunks):
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
    name = CHANNEL_NAMES[channels]
    return {"images": images, "pixels": count, f"mean_{name}": mean, f"std_{name}": std}


def stats(out_dir: str, split: str = "train", workers: int = 1, limit: int = 0) -> dict:
    """The statistics of ``split`` of the folder ``out_dir``, with its dataset and split."""
    manifest = load_manifest(out_dir)
    if split not in manifest["splits"]:
        raise UserError(f"--split {split!r}: expected one of {sorted(manifest['splits'])}")
    if manifest.get("dataset") not in DATASETS:
        raise UserError(f"{out_dir}: dataset {manifest.get('dataset')!r} unknown; expected one "
                        f"of {', '.join(DATASETS)}")
    path = os.path.join(out_dir, f"{split}.rec")
    if not os.path.isfile(path):
        raise UserError(f"{path} not found")
    channels = DATASETS[manifest["dataset"]].channels
    with open(path, "rb") as f:
        result = channel_statistics(image_chunks(f, limit), channels, workers)
    result.update(dataset=manifest["dataset"], split=split)
    return result


def format_stats(result: dict) -> str:
    """The lines ``igc-make-rec stats`` prints."""
    name = "rgb" if "mean_rgb" in result else "grey"
    label = "RGB" if name == "rgb" else "grey"
    return "\n".join([
        f"{result['dataset']} {result['split']}: {result['images']} images, "
        f"{result['pixels']} pixels per channel",
        f"mean ({label}, 0-255): " + ",".join(f"{v:.3f}" for v in result[f"mean_{name}"]),
        f"std  ({label}, 0-255): " + ",".join(f"{v:.3f}" for v in result[f"std_{name}"])])
