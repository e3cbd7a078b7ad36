"""What the headers of a PNG or JPEG file say, read without decoding its pixels.

Used to check record files cheaply: the train scripts locate an image that does not
decode, and ``igc-make-rec verify`` checks every image's size, channels and encoder
settings against its manifest, also with ``--no-decode``. Needs no MXNet or OpenCV.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> channels OpenCV decodes with IMREAD_UNCHANGED
PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
JPEG_SOI = b"\xff\xd8"
# SOF markers: baseline, extended, progressive, lossless (Huffman and arithmetic)
JPEG_SOF = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless",
            0xC5: "differential", 0xC6: "differential progressive",
            0xC7: "differential lossless", 0xC9: "arithmetic extended",
            0xCA: "arithmetic progressive", 0xCB: "arithmetic lossless",
            0xCD: "arithmetic differential", 0xCE: "arithmetic differential progressive",
            0xCF: "arithmetic differential lossless"}
JPEG_SOS, JPEG_DQT, JPEG_DHT, JPEG_EOI = 0xDA, 0xDB, 0xC4, 0xD9
# JPEG's zigzag order: entry k of a DQT table is coefficient ZIGZAG[k] in row-major order
ZIGZAG = (0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48,
          41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15,
          23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63)


class ImageHeaderError(ValueError):
    """The bytes are not a PNG or JPEG file, or its header is broken."""


class TruncatedHeader(ImageHeaderError):
    """The header continues past the bytes given: read more of the file."""


def png_info(data: bytes) -> dict:
    """{'format': 'png', width, height, channels, bit_depth, color_type, interlace,
    zlib_level}: the IHDR chunk, and the compression level class (FLEVEL, 0-3) of the
    zlib stream of the first IDAT chunk."""
    if len(data) < 33:
        raise TruncatedHeader("PNG header cut short")
    length, kind = struct.unpack_from(">I4s", data, 8)
    if kind != b"IHDR" or length != 13:
        raise ImageHeaderError("PNG without an IHDR chunk first")
    width, height, depth, color, compression, filter_, interlace = struct.unpack_from(
        ">IIBBBBB", data, 16)
    if width == 0 or height == 0 or color not in PNG_CHANNELS or compression or filter_:
        raise ImageHeaderError(f"PNG IHDR invalid (size {width}x{height}, colour type "
                               f"{color}, compression {compression}, filter {filter_})")
    info = {"format": "png", "width": width, "height": height,
            "channels": PNG_CHANNELS[color], "bit_depth": depth, "color_type": color,
            "interlace": interlace, "zlib_level": None}
    pos = 33
    while True:
        if pos + 8 > len(data):
            raise TruncatedHeader("PNG chunks continue past the bytes read")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IDAT":
            if pos + 10 > len(data):
                raise TruncatedHeader("PNG IDAT chunk cut short")
            if length < 2:
                raise ImageHeaderError("PNG IDAT chunk without a zlib header")
            cmf, flg = data[pos + 8], data[pos + 9]
            if cmf & 0x0F != 8 or (cmf * 256 + flg) % 31:
                raise ImageHeaderError("PNG IDAT chunk without a zlib header")
            info["zlib_level"] = flg >> 6
            return info
        if kind == b"IEND":
            raise ImageHeaderError("PNG without image data")
        pos += 12 + length


def jpeg_segments(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(marker, payload) of every JPEG segment from SOI up to and including SOS."""
    if not data.startswith(JPEG_SOI):
        raise ImageHeaderError("not a JPEG file")
    pos = 2
    while True:
        while pos < len(data) and data[pos] == 0xFF and pos + 1 < len(data) \
                and data[pos + 1] == 0xFF:
            pos += 1   # fill bytes
        if pos + 4 > len(data):
            raise TruncatedHeader("JPEG segments continue past the bytes read")
        if data[pos] != 0xFF:
            raise ImageHeaderError(f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == JPEG_EOI:
            raise ImageHeaderError("JPEG ends before its image data")
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise ImageHeaderError(f"JPEG segment 0x{marker:02X} of length {length}")
        if pos + 2 + length > len(data):
            raise TruncatedHeader("JPEG segment continues past the bytes read")
        yield marker, data[pos + 4:pos + 2 + length]
        if marker == JPEG_SOS:
            return
        pos += 2 + length


def jpeg_info(data: bytes) -> dict:
    """{'format': 'jpg', width, height, channels, process (JPEG_SOF's name),
    components [(id, h, v, quant table)], quant {table id: 64 values in row-major
    order}, huffman {(class, id): (16 counts, symbols)}} from the headers before the
    image data."""
    info = {"format": "jpg", "quant": {}, "huffman": {}, "process": None}
    for marker, body in jpeg_segments(data):
        if marker in JPEG_SOF:
            if len(body) < 6:
                raise ImageHeaderError("JPEG frame header cut short")
            _, height, width, count = struct.unpack_from(">BHHB", body)
            if len(body) < 6 + 3 * count or width == 0 or height == 0 or count == 0:
                raise ImageHeaderError(f"JPEG frame header invalid ({width}x{height}, "
                                       f"{count} components)")
            info.update(width=width, height=height, channels=count, process=JPEG_SOF[marker],
                        components=[(body[6 + 3 * i], body[7 + 3 * i] >> 4,
                                     body[7 + 3 * i] & 15, body[8 + 3 * i])
                                    for i in range(count)])
        elif marker == JPEG_DQT:
            pos = 0
            while pos < len(body):
                precision, table = body[pos] >> 4, body[pos] & 15
                size = 64 * (2 if precision else 1)
                values = (struct.unpack_from(">64H", body, pos + 1) if precision
                          else tuple(body[pos + 1:pos + 65]))
                if len(values) != 64:
                    raise ImageHeaderError("JPEG quantization table cut short")
                natural = [0] * 64
                for k, v in enumerate(values):
                    natural[ZIGZAG[k]] = v
                info["quant"][table] = tuple(natural)
                pos += 1 + size
        elif marker == JPEG_DHT:
            pos = 0
            while pos + 17 <= len(body):
                cls, table = body[pos] >> 4, body[pos] & 15
                counts = tuple(body[pos + 1:pos + 17])
                symbols = tuple(body[pos + 17:pos + 17 + sum(counts)])
                info["huffman"][(cls, table)] = (counts, symbols)
                pos += 17 + sum(counts)
        elif marker == JPEG_SOS and info["process"] is None:
            raise ImageHeaderError("JPEG image data before a frame header")
    return info


def image_info(data: bytes) -> dict:
    """``png_info`` or ``jpeg_info`` by the file's signature; ImageHeaderError for
    anything else (TruncatedHeader when ``data`` ends inside the header)."""
    if data.startswith(PNG_SIGNATURE):
        return png_info(data)
    if data.startswith(JPEG_SOI):
        return jpeg_info(data)
    if len(data) < 8 and (PNG_SIGNATURE.startswith(data) or JPEG_SOI.startswith(data[:2])):
        raise TruncatedHeader("image header cut short")
    raise ImageHeaderError(f'neither a PNG nor a JPEG file (starts with {data[:8].hex(" ")})')
