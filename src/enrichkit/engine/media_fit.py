"""Whether a row's media can go in a request of a provider at all: what no pack, not even the row alone,
could carry fails the row before anything is sent, with why."""

from __future__ import annotations

from collections.abc import Sequence

from enrichkit.engine.codec import REQUEST_TEXT_ROOM, inline_size
from enrichkit.providers.base import MediaLimits
from enrichkit.rows.media import PDF, MediaRef, encoded_size


def unsendable(refs: Sequence[MediaRef], limits: MediaLimits, provider: str) -> str | None:
    """Why a request of ``provider`` (with ``limits``) cannot carry the media ``refs`` of one row (None: it can)."""
    for ref in refs:
        if limits.file_above and limits.file_bytes and ref.size > limits.file_bytes:
            return (
                f"its {ref.kind} takes {_mb(ref.size)}, more than the {_mb(limits.file_bytes)} of one {provider} file"
            )
        if ref.mime == PDF:
            continue
        if limits.image_bytes and encoded_size(ref) > limits.image_bytes:
            return (
                f"its image takes {_mb(encoded_size(ref))} base64-encoded, more than the {_mb(limits.image_bytes)}"
                f" {provider} takes of one image"
            )
        if limits.image_side and max(ref.width, ref.height) > limits.image_side:
            return (
                f"its image is {ref.width}x{ref.height} px, more than the {limits.image_side} px a side"
                f" {provider} takes"
            )
    if len(refs) > limits.items:
        return f"it has {len(refs)} media, more than the {limits.items} one {provider} request takes"
    pages = sum(r.pages for r in refs)
    if limits.pages and pages > limits.pages:
        return f"its PDFs have {pages} pages, more than the {limits.pages} one {provider} request takes"
    size = sum(inline_size(r, limits) for r in refs)
    if not limits.file_above and size > limits.request_bytes - REQUEST_TEXT_ROOM:
        return (
            f"its media take {size / 1e6:.1f} MB base64-encoded, more than one {provider} request"
            f" holds ({limits.request_bytes / 1e6:g} MB with its text)"
        )
    return None


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
