"""Gemini media too big to travel inline, sent through the Files API: uploaded (``client.aio.files.upload``,
the resumable protocol), waited on while Gemini processes them (``PROCESSING`` until ``ACTIVE``), then
referenced by URI (``file_data``) in as many requests as carry them.

Which media go so is ``by_file``'s rule: those over ``MediaLimits.file_above``, then, largest first, any a
request cannot hold inline. ``Uploads`` uploads each content once (keyed by its sha256; concurrent requests
share one upload) and deletes its files when the run ends (``delete``, best-effort: Gemini drops them after
48 hours anyway). An upload that fails in a way that may pass (a 5xx, a timeout, an upload left
unfinished) is a ``TransientError`` of the request that needed it, retried with it; a bad key stops the run;
a file Gemini could not process (``FAILED``) is a ``RequestRejected`` of each request carrying it, so its row
fails alone at the bottom of the ladder.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager

from google import genai
from google.genai import types

from enrichkit.errors import ProviderError, RequestRejected, TransientError
from enrichkit.providers.base import Media, MediaLimits, Request, base64_size
from enrichkit.providers.classify import first_line

PROCESSING_SECONDS = 300.0
"""How long a file may stay ``PROCESSING`` before its request fails as a transient error."""
_POLL = (0.05, 2.0)  # the first wait between two looks at a file being processed, and the longest
_TEXT_SLACK = 64_000  # bytes of a request's JSON beside its prompt, system text and schema
_DELETING = 8  # deletions at once


def key_of(media: Media) -> str:
    return media.sha256 or hashlib.sha256(media.data).hexdigest()


def by_file(request: Request, limits: MediaLimits | None) -> list[Media]:
    """The media of ``request`` to send as uploaded files (none without ``limits.file_above``): those over
    ``file_above``, then the largest of the rest until what stays inline fits the request (base64-encoded)."""
    if limits is None or not limits.file_above:
        return []
    sent = [m for m in request.media if m.data]
    files = [m for m in sent if len(m.data) > limits.file_above]
    inline = sorted((m for m in sent if len(m.data) <= limits.file_above), key=lambda m: len(m.data))
    text = len(request.system.encode()) + len(request.prompt.encode()) + len(json.dumps(request.schema))
    room = limits.request_bytes - text - _TEXT_SLACK
    while inline and sum(base64_size(len(m.data)) for m in inline) > room:
        files.append(inline.pop())
    return files


class Uploads:
    """The files one run uploaded, by the sha256 of their content; ``mapped`` maps the SDK's errors
    (``gemini.mapped_errors``)."""

    def __init__(self, client: genai.Client, mapped: Callable[[str], AbstractContextManager[None]]) -> None:
        self.client = client
        self.mapped = mapped
        self._files: dict[str, asyncio.Future[str]] = {}
        self.names: list[str] = []
        """The files uploaded and not yet deleted."""

    async def uris(self, media: Sequence[Media], model: str) -> dict[str, str]:
        """The URI of each of ``media`` by its sha256, uploading those not uploaded yet (at once)."""
        keys = list(dict.fromkeys(key_of(m) for m in media))
        first = {key_of(m): m for m in media}
        found = await asyncio.gather(*(self._uri(first[k], k, model) for k in keys))
        return dict(zip(keys, found, strict=True))

    async def _uri(self, media: Media, key: str, model: str) -> str:
        future = self._files.get(key)
        if future is None or future.get_loop() is not asyncio.get_running_loop():
            future = self._files[key] = asyncio.ensure_future(self._upload(media, key, model))
        try:
            return await asyncio.shield(future)
        except ProviderError as exc:
            if not isinstance(exc, RequestRejected) and self._files.get(key) is future:
                del self._files[key]  # the next request carrying it uploads it again
            raise

    async def _upload(self, media: Media, key: str, model: str) -> str:
        kind = "PDF" if media.mime == "application/pdf" else "image"
        config = types.UploadFileConfig(mime_type=media.mime, display_name=f"enrichkit-{key[:16]}")
        with self.mapped(model):
            try:
                file = await self.client.aio.files.upload(file=io.BytesIO(media.data), config=config)
            except (ValueError, KeyError) as exc:  # the SDK's own: an upload the server left unfinished
                said = first_line(str(exc))
                raise TransientError(f"Gemini: the upload of an {kind} did not finish ({said})") from None
            if file.name:
                self.names.append(file.name)
            waited, pause = 0.0, _POLL[0]
            while file.state == types.FileState.PROCESSING and file.name:
                if waited >= PROCESSING_SECONDS:
                    raise TransientError(f"Gemini was still processing an uploaded {kind} after {waited:.0f} s")
                await asyncio.sleep(pause)
                waited, pause = waited + pause, min(2 * pause, _POLL[1])
                file = await self.client.aio.files.get(name=file.name)
        if file.state == types.FileState.FAILED:
            said = first_line(file.error.message or "") if file.error is not None else ""
            # named by its file: several rows' broken files are never one refusal repeated (engine.stop_evidence)
            raise RequestRejected(
                f"Gemini could not process the uploaded {kind} {file.name}{f': {said}' if said else ''}"
            )
        if not file.uri:
            raise TransientError(f"Gemini gave no URI for an uploaded {kind}")
        return file.uri

    async def delete(self) -> None:
        """Delete every file uploaded (best-effort: one that cannot be deleted expires after 48 hours)."""
        names, self.names = self.names, []
        self._files.clear()
        room = asyncio.Semaphore(_DELETING)

        async def one(name: str) -> None:
            async with room:
                with contextlib.suppress(Exception):
                    await self.client.aio.files.delete(name=name)

        await asyncio.gather(*(one(name) for name in names))


def file_part(media: Media, uris: Mapping[str, str]) -> types.Part | None:
    """The ``file_data`` part of ``media`` where it was uploaded (None: it travels inline)."""
    uri = uris.get(key_of(media)) if uris else None
    return None if uri is None else types.Part(file_data=types.FileData(file_uri=uri, mime_type=media.mime))
