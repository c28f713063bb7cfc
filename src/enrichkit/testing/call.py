"""One request as the stub reads it: texts, answer schema, pack ids and records, found without
relying on how enrichkit lays out its prompt."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_OPENING = re.compile(r"[\[{]")


def schema_ids(schema: Mapping[str, Any]) -> list[str]:
    """The pack ids an answer schema allows, in order (empty for a single row's object schema)."""
    if "prefixItems" in schema:
        return [item["properties"]["id"]["const"] for item in schema["prefixItems"]]
    if schema.get("type") == "array":
        return list(schema["items"]["properties"]["id"]["enum"])
    return []


def find_records(prompt: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The records in ``prompt``: the JSON array whose objects carry exactly ``ids`` (a pack) or, with
    no ids, the first JSON object (a single row), wherever it stands in the text; empty if none."""
    decoder = json.JSONDecoder()
    wanted = set(ids)
    for opening in _OPENING.finditer(prompt):
        try:
            value, _ = decoder.raw_decode(prompt, opening.start())
        except json.JSONDecodeError:
            continue
        if not wanted and isinstance(value, dict):
            return [value]
        if (
            wanted
            and isinstance(value, list)
            and {r.get("id") if isinstance(r, dict) else None for r in value} == wanted
        ):
            return value
    return []


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
