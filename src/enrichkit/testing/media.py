"""Images and PDFs for the test doubles: tiny writers (a PNG of one colour, a one-page PDF of a line of
text) and what a stub "sees" in a request's media, decoded from their bytes: a PNG's dominant colour, a
PDF's text. A stub answers each row from what it sees in the media after that row's record, so an answer
given to another row's image shows.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 40),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
}

PLACEHOLDER = re.compile(r"^\(the (?:image|PDF) after this record")
_ID = re.compile(r'"id": "([^"]+)"')


def png(width: int, height: int, rgb: tuple[int, int, int], noise: int = 0) -> bytes:
    """A PNG of ``width`` x ``height`` pixels of one colour (``noise``: that many bytes of varying pixels at
    its end, which compress badly: a bigger file of the same dominant colour)."""
    row = b"\x00" + bytes(rgb) * width
    rows = [row] * height
    if noise:
        seed = bytearray()
        state = 12345
        while len(seed) < noise:
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            seed += state.to_bytes(4, "little")
        extra = (len(seed) + 3 * width - 1) // (3 * width)
        rows += [
            b"\x00" + bytes(seed[i * 3 * width : (i + 1) * 3 * width]).ljust(3 * width, b"\x00") for i in range(extra)
        ]
        height += extra
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (a valid file with its cross-reference table, written by hand)."""
    stream = f"BT /F1 24 Tf 72 700 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % at for at in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def seen(mime: str, data: bytes) -> str:
    """What a stub sees in one media: a PNG's dominant colour's name, a PDF's text, else its type."""
    if mime == "image/png":
        return colour_name(dominant(data))
    if mime == "application/pdf":
        found = re.findall(rb"\(([^)]*)\)\s*Tj", data)
        return " ".join(t.decode("latin-1") for t in found) or "an empty PDF"
    return mime


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The named colour nearest ``rgb``."""
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOURS[name], rgb, strict=True)))


def dominant(data: bytes) -> tuple[int, int, int]:
    """The most common pixel of an 8-bit RGB or RGBA PNG without interlacing (filters undone)."""
    at, width, height, channels, idat = 8, 0, 0, 3, b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            if depth != 8 or colour not in (2, 6):
                raise ValueError("the stub reads 8-bit RGB(A) PNGs only")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    counts: dict[bytes, int] = {}
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        current = _unfilter(line[0], bytearray(line[1:]), previous, channels)
        for x in range(0, stride, channels):
            pixel = bytes(current[x : x + 3])
            counts[pixel] = counts.get(pixel, 0) + 1
        previous = current
    best = max(counts, key=counts.__getitem__)
    return best[0], best[1], best[2]


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> bytearray:
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = prev[i]
        corner = prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
    return line


Parts = Sequence[str | tuple[str, bytes]]
"""A user message as a stub read it off its wire: text, and (MIME type, bytes) for each media."""


def user_contents(messages: list[dict[str, Any]]) -> Iterator[str | list[dict[str, Any]]]:
    """The content of each user message of a chat request: its text, or its list of parts (blocks)."""
    for message in messages:
        if message.get("role") == "user":
            yield message.get("content", "")


def joined(parts: Parts) -> tuple[str, list[tuple[str | None, str, bytes]]]:
    """The text of ``parts``, and each media with the pack id of the record it follows (the last id the text
    before it names; None for a single row's)."""
    text = ""
    media: list[tuple[str | None, str, bytes]] = []
    for part in parts:
        if isinstance(part, str):
            text += part
        else:
            ids = _ID.findall(text)
            media.append((ids[-1] if ids else None, part[0], part[1]))
    return text, media


def with_seen(records: list[dict[str, Any]], media: Sequence[tuple[str | None, str, bytes]]) -> list[dict[str, Any]]:
    """``records`` as the model sees them: each media placeholder replaced by what its media shows, and
    ``_seen`` listing it (an answer's enum value is what the media shows, where it is one)."""
    if not media:
        return records
    out = []
    for record in records:
        mine = [seen(mime, data) for rid, mime, data in media if rid is None or rid == record.get("id")]
        if not mine:
            out.append(record)
            continue
        shown = iter(mine)
        changed = {k: next(shown, v) if isinstance(v, str) and PLACEHOLDER.match(v) else v for k, v in record.items()}
        out.append({**changed, "_seen": mine})
    return out


def data_url(url: str) -> tuple[str, bytes]:
    """The MIME type and bytes of a base64 ``data:`` URL (``ValueError`` for any other)."""
    match = re.match(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", url, re.S)
    if match is None:
        raise ValueError(f"not a base64 data: URL: {url[:40]!r}")
    return match[1], decoded(match[2])


def decoded(text: str, urlsafe: bool = False) -> bytes:
    """Strict base64 (``ValueError`` for anything else, as the APIs refuse it); ``urlsafe``: either alphabet,
    as protobuf's JSON takes a ``bytes`` field (the google-genai SDK sends the URL-safe one)."""
    if urlsafe:
        text = text.replace("-", "+").replace("_", "/")
        text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"media data is not valid base64: {exc}") from None
