"""Images and documents in rows: a media input's value read, checked and hashed, and read again to be sent.

A value is a local path (relative to ``MediaReader.root``, the input file's folder), an ``http(s)`` URL,
a ``data:`` URL or bytes. Its MIME type is sniffed from its bytes (PNG, JPEG, WebP, GIF, PDF), never from
its name. ``MediaReader.ref`` reads a value once, streaming, into a ``MediaRef``: its sha256 (what the
row's cache key holds: a moved file is a hit, a changed one a miss), MIME type, size, and what its
token cost depends on (an image's pixels, a PDF's pages); the bytes themselves are not kept. A URL is
fetched once, into a spool file named by its hash, and sent from there. ``MediaReader.read`` gives a
value's bytes when its pack is sent, checked against the hash it was keyed by.

A value that cannot be read, is too big, or is no media of its input's kind raises ``MediaError``: that
row fails alone, with the reason, and nothing is sent for it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import shutil
import struct
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urlsplit

from enrichkit.errors import UserError
from enrichkit.options import MAX_MEDIA_MB
from enrichkit.providers.base import base64_size

if TYPE_CHECKING:
    import httpx2

IMAGES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
PDF = "application/pdf"
KINDS: dict[str, frozenset[str]] = {"image": IMAGES, "pdf": frozenset({PDF}), "media": IMAGES | {PDF}}
"""A media input's kind and the MIME types it takes."""

FETCH_TIMEOUT = 30.0
MAX_REDIRECTS = 3
_CHUNK = 1 << 20
_HEAD = 1 << 16  # what the pixel size is read from
_THREADS = 8
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_URL_TYPES = ("image/", PDF, "application/octet-stream", "binary/octet-stream")


class MediaError(Exception):
    """Why a media value cannot be sent: its row fails with this reason."""


@dataclass(frozen=True)
class MediaRef:
    """A media value read once: what its row's key holds (``sha256``) and what its pack needs to send it."""

    source: str | bytes
    """The value as the row holds it (a path, a URL, a ``data:`` URL, bytes)."""
    sha256: str
    mime: str
    size: int
    width: int = 0
    height: int = 0
    pages: int = 0

    @property
    def key(self) -> dict[str, str]:
        """What the row's cache key holds of it: its content's hash alone."""
        return {"sha256": self.sha256}

    @property
    def kind(self) -> str:
        return "PDF" if self.mime == PDF else "image"


def sniff(head: bytes) -> str | None:
    """The MIME type the first bytes of a file show (None: no image or PDF enrichkit sends)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:1024].lstrip().startswith(b"%PDF-"):
        return PDF
    return None


def pixels(head: bytes, mime: str) -> tuple[int, int]:
    """An image's width and height from its first bytes ((0, 0) where they do not show them)."""
    try:
        if mime == "image/png" and len(head) >= 24:
            width, height = struct.unpack(">II", head[16:24])
            return int(width), int(height)
        if mime == "image/gif" and len(head) >= 10:
            width, height = struct.unpack("<HH", head[6:10])
            return int(width), int(height)
        if mime == "image/webp":
            return _webp(head)
        if mime == "image/jpeg":
            return _jpeg(head)
    except struct.error:
        pass
    return 0, 0


def _webp(head: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    if chunk == b"VP8X":
        w, h = int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return int(w) & 0x3FFF, int(h) & 0x3FFF
    return 0, 0


def _jpeg(head: bytes) -> tuple[int, int]:
    at = 2
    while at + 9 < len(head):
        if head[at] != 0xFF:
            return 0, 0
        marker = head[at + 1]
        length = int.from_bytes(head[at + 2 : at + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", head[at + 5 : at + 9])
            return int(width), int(height)
        at += 2 + length
    return 0, 0


class _Digest:
    """A value's bytes as they stream by: hashed, the head kept, a PDF's pages counted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.hash = hashlib.sha256()
        self.head = b""
        self.size = 0
        self.pages = 0
        self._tail = b""

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise MediaError(f"bigger than the {self.limit / 1e6:g} MB cap (--max-media-mb)")
        self.hash.update(data)
        if len(self.head) < _HEAD:
            self.head += data[: _HEAD - len(self.head)]
        if self.head.startswith(b"%PDF") or self.head[:1024].lstrip().startswith(b"%PDF-"):
            joined = self._tail + data
            self.pages += len(_PAGE.findall(joined)) - len(_PAGE.findall(self._tail))
            self._tail = joined[-16:]

    def ref(self, source: str | bytes, kind: str) -> MediaRef:
        mime = sniff(self.head)
        if mime is None:
            shown = "an empty file" if not self.size else "no image (PNG, JPEG, WebP, GIF) or PDF"
            raise MediaError(f"{shown} by its bytes")
        if mime not in KINDS[kind]:
            raise MediaError(f"{'a PDF' if mime == PDF else 'an image'}, where the input takes {_kind(kind)}")
        width, height = pixels(self.head, mime)
        pages = max(1, self.pages) if mime == PDF else 0
        return MediaRef(source, self.hash.hexdigest(), mime, self.size, width, height, pages)


def _kind(kind: str) -> str:
    return {"image": "images", "pdf": "PDFs", "media": "images and PDFs"}[kind]


class MediaReader:
    """Reads a run's media values: local paths from ``root`` (default: the working folder), URLs fetched
    (``timeout`` seconds, ``MAX_REDIRECTS`` redirects, http and https only) into a spool folder of its own;
    no value over ``max_mb`` megabytes. ``close`` removes the spool."""

    def __init__(self, root: Path | None = None, max_mb: float = MAX_MEDIA_MB, timeout: float = FETCH_TIMEOUT) -> None:
        self.root = root
        self.limit = int(max_mb * 1e6)
        self.timeout = timeout
        self._spool: Path | None = None
        self._client: httpx2.Client | None = None
        self._lock = threading.Lock()

    def ref(self, value: Any, kind: str) -> MediaRef:
        """``value`` read once and checked (``MediaError``: why it cannot be sent)."""
        digest = _Digest(self.limit)
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            digest.add(data)
            return digest.ref(data, kind)
        if not isinstance(value, str) or not value.strip():
            raise MediaError("no media: the value is empty" if not value else f"not a path or URL: {value!r}")
        text = value.strip()
        if text.startswith("data:"):
            digest.add(_data_url(text))
            return digest.ref(text, kind)
        scheme = urlsplit(text).scheme.lower()
        if scheme in ("http", "https"):
            return self._fetch(text, kind, digest)
        if scheme and len(scheme) > 1:
            raise MediaError(f"{scheme}: URLs are not read (http, https and data: URLs, and local paths are)")
        with self._open(text) as file:
            while chunk := file.read(_CHUNK):
                digest.add(chunk)
        return digest.ref(text, kind)

    def refs(self, values: Sequence[Mapping[str, Any]], media: Mapping[str, str]) -> list[dict[str, MediaRef] | str]:
        """The ``media`` fields (name -> kind) of each row's ``values`` read: their refs, or why the row
        cannot be sent (the first field that failed, named). Read on a few threads (files and URLs wait on I/O)."""

        def one(row: Mapping[str, Any]) -> dict[str, MediaRef] | str:
            refs = {}
            for name, kind in media.items():
                try:
                    refs[name] = self.ref(row[name], kind)
                except MediaError as exc:
                    return f"media input {name!r} ({shown(row[name])}): {exc}"
            return refs

        if len(values) < 4:
            return [one(row) for row in values]
        with ThreadPoolExecutor(_THREADS) as pool:
            return list(pool.map(one, values))

    def read(self, ref: MediaRef) -> bytes:
        """The bytes of a value read before (a URL's from the spool), checked against its hash: a file changed
        since stops the run, which would otherwise send other content than its key holds."""
        source = ref.source
        if isinstance(source, bytes):
            return source
        try:
            if source.startswith("data:"):
                data = _data_url(source)
            elif urlsplit(source).scheme.lower() in ("http", "https"):
                data = self._spooled(ref.sha256).read_bytes()
            else:
                with self._open(source) as file:
                    data = file.read()
        except (OSError, MediaError) as exc:
            raise UserError(
                f"media {shown(source)} can no longer be read ({exc}): it was read at the start of the run"
            ) from None
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise UserError(f"media {shown(source)} changed while the run read it: run again")
        return data

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    @contextlib.contextmanager
    def _open(self, text: str) -> Iterator[IO[bytes]]:
        path = Path(text).expanduser()
        if not path.is_absolute() and self.root is not None:
            path = self.root / path
        try:
            with path.open("rb") as file:
                yield file
        except FileNotFoundError:
            raise MediaError(f"no such file (looked at {path.resolve()})") from None
        except IsADirectoryError:
            raise MediaError("a folder, not a file") from None
        except OSError as exc:
            raise MediaError(f"cannot read it: {exc.strerror or exc}") from None

    def _fetch(self, url: str, kind: str, digest: _Digest) -> MediaRef:
        import httpx2  # only a run with URLs pays for its import

        spool = self._spool_dir()
        fd, part = tempfile.mkstemp(dir=spool, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, self._http().stream("GET", url) as response:
                if response.status_code != 200:
                    raise MediaError(f"the server answered {response.status_code} {response.reason_phrase}".rstrip())
                declared = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if declared and not declared.startswith(_URL_TYPES):
                    raise MediaError(f"the server sent {declared}, not an image or PDF")
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > digest.limit:
                    raise MediaError(
                        f"{int(length) / 1e6:g} MB, bigger than the {digest.limit / 1e6:g} MB cap (--max-media-mb)"
                    )
                for chunk in response.iter_bytes(_CHUNK):
                    digest.add(chunk)
                    out.write(chunk)
            ref = digest.ref(url, kind)
            os.replace(part, self._spooled(ref.sha256))
            return ref
        except httpx2.TooManyRedirects:
            raise MediaError(f"more than {MAX_REDIRECTS} redirects") from None
        except httpx2.UnsupportedProtocol:
            raise MediaError("redirected to a URL that is not http or https") from None
        except httpx2.TimeoutException:
            raise MediaError(f"no answer within {self.timeout:g} s") from None
        except httpx2.HTTPError as exc:
            raise MediaError(f"fetch failed: {type(exc).__name__}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)

    def _http(self) -> httpx2.Client:
        import httpx2

        with self._lock:
            if self._client is None:
                self._client = httpx2.Client(follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=self.timeout)
            return self._client

    def _spool_dir(self) -> Path:
        with self._lock:
            if self._spool is None:
                self._spool = Path(tempfile.mkdtemp(prefix="enrichkit-media-"))
            return self._spool

    def _spooled(self, sha256: str) -> Path:
        return self._spool_dir() / sha256


def _data_url(text: str) -> bytes:
    """The bytes of a ``data:`` URL (base64 or percent-encoded)."""
    meta, comma, payload = text.partition(",")
    if not comma:
        raise MediaError("a data: URL without a comma")
    if meta.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            raise MediaError("a data: URL whose base64 is broken") from None
    return unquote_to_bytes(payload)


def shown(value: Any) -> str:
    """A media value as a failure names it (bytes and data: URLs by their size, not their content)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{len(value):,} bytes"
    text = str(value)
    if text.startswith("data:"):
        return f"a data: URL of {len(text):,} characters"
    parts = urlsplit(text)
    if parts.scheme.lower() in ("http", "https"):  # no query: a signed URL's token stays out of reports
        text = f"{parts.scheme}://{parts.hostname or ''}{parts.path}" + ("?..." if parts.query else "")
    return text if len(text) <= 200 else text[:197] + "..."


def encoded_size(ref: MediaRef) -> int:
    """The bytes a value takes in a request, base64-encoded."""
    return base64_size(ref.size)


def keyed_media(
    inputs: list[dict[str, Any]], media: Mapping[str, str], reader: MediaReader
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The rows' ``inputs`` as their cache keys hold them (each ``media`` field's value by its content's hash),
    with those values in ``inputs`` made ``MediaRef``s; and, by row number (from 0), why a row's media
    cannot be sent (its key then holds what could not be read, so it is never a hit)."""
    keyed: list[dict[str, Any]] = []
    problems: dict[int, str] = {}
    for n, (values, refs) in enumerate(zip(inputs, reader.refs(inputs, media), strict=True)):
        if isinstance(refs, str):
            problems[n] = refs
            keyed.append({**values, **{name: {"unread": shown(values[name])} for name in media}})
            continue
        values.update(refs)
        keyed.append({**values, **{name: ref.key for name, ref in refs.items()}})
    return keyed, problems


def media_of(values: Mapping[str, Any]) -> list[MediaRef]:
    """The media of a row's input values, in field order."""
    return [v for v in values.values() if isinstance(v, MediaRef)]


def text_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """A row's input values but its media."""
    return {k: v for k, v in values.items() if not isinstance(v, MediaRef)}
