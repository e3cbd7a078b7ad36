"""MXNet's RecordIO on disk, written and read in plain Python (no MXNet needed).

dmlc-core's framing: every record starts with a magic word and a 32-bit word
holding a 3-bit continuation flag and a 29-bit length, padded to 4 bytes. An
image record's payload is mxnet.recordio.IRHeader (struct 'IfQQ') followed by
the encoded image. Used by ``igc_mx.tools.make_rec`` and the train scripts' record
checks (``igc_mx.training.data``).
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterator


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
