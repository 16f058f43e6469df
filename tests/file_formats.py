"""Byte-level readers the synthetic layouts' format tests share."""
from __future__ import annotations

import struct
import zlib


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, body) of every chunk of a PNG file, each chunk's CRC checked: what a format test reads by hand."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    return chunks
