"""Secrets out of every text a provider's error puts in front of the user (messages, tracebacks)."""

from __future__ import annotations

import os
import re

from enrichkit.providers import keys

MASK = "[redacted]"

MIN_LENGTH = 8  # a shorter configured "key" (a stub's "k") is not worth blanking out of every word

_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&]*")

_LOOKS_LIKE_A_KEY = re.compile(r"(?<![\w-])(?:AIza[\w-]{35,}|sk-[\w-]{16,})")  # sk-ant-... included


def redact(text: str) -> str:
    """``text`` without the configured API keys or anything shaped like a Google, OpenAI or Anthropic key."""
    for name in keys.ALL:
        value = os.environ.get(name, "").strip()
        if len(value) >= MIN_LENGTH:
            text = text.replace(value, MASK)
    return _LOOKS_LIKE_A_KEY.sub(MASK, text)


def redact_exception(exc: BaseException) -> BaseException:
    """``exc`` and the exceptions it was raised from, with their texts redacted in place (a traceback
    printed with ``-v`` shows them); ``exc`` itself for ``raise ... from redact_exception(exc)``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in current.args)
        current = current.__cause__ or current.__context__
    return exc


def redacted_url(url: str) -> str:
    """``url`` with its password masked (``redis://:secret@host`` → ``redis://:[redacted]@host``; ``?password=``)."""
    url = _PASSWORD_PARAMETER.sub(rf"\1{MASK}", url)
    scheme, sep, rest = url.partition("://")
    user, at, host = rest.rpartition("@")
    if not (sep and at and ":" in user):
        return url
    return f"{scheme}://{user.split(':', 1)[0]}:{MASK}@{host}"
