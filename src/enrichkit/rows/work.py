"""The unique work of a run: one ``Work`` per distinct row content still to enrich."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Any

from enrichkit.providers.base import estimate_tokens
from enrichkit.rows.jsontext import canonical
from enrichkit.rows.media import text_of


@dataclass(eq=False)
class Work:
    """One unique row content to enrich (rows with equal keys share it)."""

    key: str
    inputs: dict[str, Any]
    rows: int = 1
    attempts: int = 0
    row_id: Any = None
    """The id (or number) of the first row with this content: what the call log names it by."""
    fields: tuple[str, ...] | None = None
    """The output fields to ask (None: all; a row whose other fields are cached: the missing ones)."""
    text: InitVar[str | None] = None  # the inputs' canonical JSON, when the caller has it already
    prompt_tokens: int = field(init=False)

    def __post_init__(self, text: str | None) -> None:
        self.prompt_tokens = estimate_tokens(text if text is not None else canonical(text_of(self.inputs)))
