"""MXNet's RecordIO on disk, written and read in plain Python (no MXNet needed).

dmlc-core's framing: every record starts with a magic word and a 32-bit word
holding a 3-bit continuation flag and a 29-bit length, padded to 4 bytes. An
image record's payload is mxnet.recordio.IRHeader (struct 'IfQQ') followed by
the encoded image. Used by ``igc_mx.datasets`` (igc-make-rec) and the train scripts' record
checks (``igc_mx.training.data``).
"""
from __future__ import annotations

import math
import os
import struct
from array import array
from collections.abc import Iterator
from typing import BinaryIO


class UserError(Exception):
    """A problem the user can fix; printed as one message, no traceback."""


# dmlc-core RecordIO framing: every record starts with MAGIC and a 32-bit word
# holding a 3-bit continuation flag and a 29-bit length, padded to 4 bytes.
RECORD_MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", RECORD_MAGIC)
MAX_RECORD_CHUNK = (1 << 29) - 1
IR_HEADER = struct.Struct("<IfQQ")  # mxnet.recordio.IRHeader: flag, label, id, id2


def _aligned_magic_positions(payload: bytes) -> list[int]:
    """Offsets (multiples of 4) where the RecordIO magic occurs inside payload."""
    positions, start = [], 0
    while True:
        pos = payload.find(MAGIC_BYTES, start)
        if pos < 0:
            return positions
        if pos % 4 == 0:
            positions.append(pos)
            start = pos + 4
        else:
            start = pos + 1


def _chunk_header(cflag: int, length: int) -> bytes:
    return MAGIC_BYTES + struct.pack("<I", (cflag << 29) | length)


def frame_record(payload: bytes) -> bytes:
    """Frame one record the way dmlc::RecordIOWriter does.

    An aligned occurrence of the magic inside the payload is dropped and the
    payload split there (cflag 1 = first part, 2 = middle, 3 = last), so a
    reader can resynchronise on the magic.  The record is zero-padded to a
    multiple of 4 bytes, hence every record starts 4-aligned.
    """
    if len(payload) > MAX_RECORD_CHUNK:
        raise UserError(f"record of {len(payload)} bytes exceeds the RecordIO limit of "
                        f"{MAX_RECORD_CHUNK} bytes")
    parts, begin = [], 0
    for pos in _aligned_magic_positions(payload):
        parts.append(_chunk_header(1 if begin == 0 else 2, pos - begin) + payload[begin:pos])
        begin = pos + 4
    parts.append(_chunk_header(3 if begin else 0, len(payload) - begin) + payload[begin:])
    parts.append(b"\0" * (-len(payload) % 4))
    return b"".join(parts)


def iter_records(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, payload) for every record of a RecordIO stream, reading sequentially."""
    pos = 0
    while True:
        start, parts = pos, []
        while True:
            head = stream.read(8)
            if not head and not parts:
                return
            if len(head) < 8:
                raise ValueError(f"truncated record header at offset {pos}")
            magic, word = struct.unpack("<II", head)
            if magic != RECORD_MAGIC:
                raise ValueError(f"bad RecordIO magic 0x{magic:08x} at offset {pos}")
            cflag, length = word >> 29, word & MAX_RECORD_CHUNK
            padded = length + (-length % 4)
            body = stream.read(padded)
            if len(body) < padded:
                raise ValueError(f"record at offset {start} runs past the end of the file")
            parts.append(body[:length])
            pos += 8 + padded
            if cflag in (0, 3):
                break
            parts.append(MAGIC_BYTES)
        yield start, b"".join(parts)


def pack_image_record(key: int, label: int, image_bytes: bytes) -> bytes:
    """mxnet.recordio.pack(IRHeader(0, float(label), key, 0), image_bytes)."""
    return IR_HEADER.pack(0, float(label), key, 0) + image_bytes


def unpack_image_record(payload: bytes) -> tuple[int, float, int, bytes]:
    """Return (flag, label, key, image_bytes) of a single-label image record."""
    if len(payload) < IR_HEADER.size:
        raise ValueError(f"record of {len(payload)} bytes is shorter than the "
                         f"{IR_HEADER.size}-byte IRHeader")
    flag, label, key, _ = IR_HEADER.unpack_from(payload)
    return flag, label, key, payload[IR_HEADER.size + 4 * flag:]


class RecordIOError(ValueError):
    """A RecordIO file whose framing or image headers are broken at ``offset``
    (byte) in record number ``record`` (counted from 0)."""

    def __init__(self, problem: str, offset: int, record: int):
        super().__init__(f"{problem} at byte {offset} (record {record})")
        self.problem, self.offset, self.record = problem, offset, record


def _check_image_header(head: bytes, total: int, offset: int, record: int,
                        num_classes: int | None) -> None:
    """The IRHeader of an image record as ImageRecordIter reads it: one label (in the
    header, flag 0, or as the one float after it, flag 1), an image after it, the label
    a class in 0..num_classes-1."""
    flag, label, _, _ = IR_HEADER.unpack_from(head)
    if flag > 1:
        raise RecordIOError(f"image record with {flag} labels (expected 1)", offset, record)
    image_start = IR_HEADER.size + 4 * flag
    if total <= image_start:
        raise RecordIOError(f"image record of {total} bytes holds no image after its "
                            f"{image_start}-byte header", offset, record)
    if flag == 1:
        (label,) = struct.unpack_from("<f", head, IR_HEADER.size)
    if num_classes is not None and not (math.isfinite(label) and label == int(label) and
                                        0 <= label < num_classes):
        raise RecordIOError(f"label {label} is not a class in 0..{num_classes - 1}", offset,
                            record)


def _walk_record(fd: int, start: int, size: int, record: int) -> tuple[int, int, bytes]:
    """(end, payload bytes, head) of the record at byte ``start``: its chunks are followed
    by their lengths, and ``head`` is the start of its first chunk (RecordIOError names a
    missing magic word, a continuation flag out of sequence or a chunk past the end)."""
    pos, total, head = start, 0, b""
    while True:
        chunk = os.pread(fd, HEAD_READ, pos)
        if len(chunk) < 8:
            raise RecordIOError(f"file ends inside a record header ({size} bytes)", pos, record)
        magic, word = struct.unpack_from("<II", chunk)
        if magic != RECORD_MAGIC:
            raise RecordIOError(f"no RecordIO magic word (found 0x{magic:08x})", pos, record)
        cflag, length = word >> 29, word & MAX_RECORD_CHUNK
        if cflag not in ((0, 1) if pos == start else (2, 3)):
            raise RecordIOError(f"continuation flag {cflag} out of sequence", pos, record)
        end = pos + 8 + length + (-length % 4)
        if end > size:
            raise RecordIOError(f"record of {length} bytes runs past the end of the "
                                f"file ({size} bytes)", pos, record)
        if pos == start:
            head = chunk[8:8 + length]
        total += length
        pos = end
        if cflag in (0, 3):
            return end, total, head
        total += 4   # the magic word the writer split the payload at


#: bytes read at the start of every chunk: the framing words and an image record's header
HEAD_READ = 8 + IR_HEADER.size + 4


def scan_records(path: str, num_classes: int | None = None) -> array:
    """The byte offset of every record of the RecordIO file ``path``, found by walking its
    framing with one small read per record (payloads are skipped, so this stays cheap
    on large files). With ``num_classes``, every record must also be a single-label image
    record (``pack_image_record``) with a label in 0..num_classes-1. RecordIOError names
    the first problem: a missing magic word, a bad continuation flag, a record running
    past the end of the file, or a broken image header."""
    offsets = array("q")
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if hasattr(os, "posix_fadvise"):  # headers only: no read-ahead of the payloads
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        pos = 0
        while pos < size:
            start, record = pos, len(offsets)
            offsets.append(start)
            pos, total, head = _walk_record(fd, start, size, record)
            if num_classes is None:
                continue
            if total < IR_HEADER.size:
                raise RecordIOError(f"record of {total} bytes is shorter than the "
                                    f"{IR_HEADER.size}-byte image header", start, record)
            if len(head) >= HEAD_READ - 8:   # else the header is split: not checked
                _check_image_header(head, total, start, record, num_classes)
    finally:
        os.close(fd)
    return offsets


def read_record(path: str, offset: int) -> bytes:
    """The payload of the record starting at byte ``offset`` of ``path``."""
    with open(path, "rb") as f:
        f.seek(offset)
        return next(iter_records(f))[1]


def check_index(idx_path: str, offsets: array) -> int:
    """Check an ``.idx`` file (``key<TAB>offset`` lines, as MXIndexedRecordIO writes)
    against the record offsets of its ``.rec``: one line per record, unique keys, every
    offset the start of a record. Returns the number of lines; ValueError names the
    first bad line."""
    starts = set(offsets)
    keys: set[int] = set()
    count = 0
    with open(idx_path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split(b"\t")
            try:
                key, offset = (int(v) for v in fields)
            except ValueError:
                raise ValueError(f"line {line_no} is not 'key<TAB>offset'") from None
            if offset not in starts:
                raise ValueError(f"line {line_no} gives offset {offset}, where no record "
                                 "starts")
            if key in keys:
                raise ValueError(f"line {line_no} repeats key {key}")
            keys.add(key)
            count += 1
    if count != len(offsets):
        raise ValueError(f"it lists {count} records, the .rec file holds {len(offsets)}")
    return count
