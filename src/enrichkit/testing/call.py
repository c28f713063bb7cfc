"""One Gemini request as the stub reads it: texts, answer schema, pack ids and records."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from enrichkit.providers.function import find_records, schema_ids


@dataclass
class Call:
    """One request the stub received."""

    method: str
    path: str
    model: str
    action: str
    body: dict[str, Any]
    headers: dict[str, str]
    received: float = field(default_factory=time.monotonic)
    batch: str | None = None
    """The batch job that this request belongs to (None for a live call or an API request)."""

    @property
    def system(self) -> str:
        parts = self.body.get("systemInstruction", {}).get("parts", [])
        return "".join(p.get("text", "") for p in parts)

    @property
    def prompt(self) -> str:
        contents = self.body.get("contents", [])
        return "".join(p.get("text", "") for c in contents for p in c.get("parts", []))

    @property
    def service_tier(self) -> str | None:
        """The ``serviceTier`` the client asked for (``"flex"``, ...), if any."""
        tier: str | None = self.body.get("serviceTier")
        return tier

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.body.get("generationConfig", {})
        return config

    @property
    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.config.get("responseJsonSchema") or self.config.get("responseSchema") or {}
        return schema

    @property
    def ids(self) -> list[str]:
        """The pack ids the answer schema allows (empty for a single-row call)."""
        return schema_ids(self.schema)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records in the prompt (a pack's objects, or a single row's one object)."""
        return find_records(self.prompt, self.ids)
