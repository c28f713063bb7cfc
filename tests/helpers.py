"""Helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enrichkit import RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)


def topic_rows(n: int, prefix: str = "t") -> list[dict[str, Any]]:
    """Synthetic roadmap-like rows (no roadmap.sh content: its licence forbids copying it)."""
    return [
        {
            "id": f"{prefix}{i}",
            "category": f"Area {i % 7}",
            "topic": f"Topic number {i}",
            "description": f"Synthetic description {i} of a topic, with enough words to summarise it.",
        }
        for i in range(n)
    ]
