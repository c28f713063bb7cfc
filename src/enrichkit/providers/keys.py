"""Where each provider's API key comes from: the environment variables its SDK reads."""

from __future__ import annotations

import os

GEMINI = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # the SDK's own precedence
OPENAI = "OPENAI_API_KEY"
ANTHROPIC = "ANTHROPIC_API_KEY"
ALL = (*GEMINI, OPENAI, ANTHROPIC)


def from_env(*names: str) -> str | None:
    """The first of the variables ``names`` that is set (stripped), or None."""
    for name in names:
        if value := os.environ.get(name, "").strip():
            return value
    return None
