"""Model prices (one data file, ``prices.json``, overridable) and what a run costs at them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from enrichkit.errors import UserError

PRICES_VARIABLE = "ENRICHKIT_PRICES"


@dataclass(frozen=True)
class Price:
    """US$ per million tokens, at the live (standard) and the batch/flex price."""

    input: float
    output: float
    batch_input: float
    batch_output: float

    def cost(self, prompt_tokens: int, output_tokens: int, *, batch: bool = False) -> float:
        rate_in, rate_out = (self.batch_input, self.batch_output) if batch else (self.input, self.output)
        return (prompt_tokens * rate_in + output_tokens * rate_out) / 1_000_000


def _models(doc: Any, origin: str) -> dict[str, Price]:
    try:
        return {name: Price(**figures) for name, figures in doc["models"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise UserError(
            f"{origin}: not a price table ({{'models': {{name: {{input, output, ...}}}}}}): {exc}"
        ) from None


def price_table() -> dict[str, Price]:
    """The bundled prices, with the file named by ENRICHKIT_PRICES (if set) laid over them."""
    table = _models(
        json.loads(resources.files("enrichkit.calls").joinpath("prices.json").read_text("utf-8")), "prices.json"
    )
    override = os.environ.get(PRICES_VARIABLE)
    if override:
        path = Path(override)
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{path} (from {PRICES_VARIABLE}): cannot read a price table: {exc}") from None
        table.update(_models(doc, str(path)))
    return table


def price_of(model: str) -> Price | None:
    """The price of ``model`` (``models/`` prefix and ``-001``-style suffixes tolerated); None if unknown."""
    table = price_table()
    name = model.removeprefix("models/")
    while name and name not in table:
        head, _, tail = name.rpartition("-")
        if not head or not tail.isdigit():
            return None
        name = head
    return table.get(name)
