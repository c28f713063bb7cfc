"""Model prices (one data file, ``prices.json``, overridable) and what a run costs at them."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from enrichkit.errors import UserError
from enrichkit.result import Cost, ModelStats, Stats

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


def cost_of(model: str, prompt_tokens: int, output_tokens: int, mode: str = "live") -> Cost | None:
    """What ``model``'s tokens cost (None: no price is known for it)."""
    price = price_of(model)
    if price is None:
        return None
    live, batch = price.cost(prompt_tokens, output_tokens), price.cost(prompt_tokens, output_tokens, batch=True)
    return Cost(round(live, 6), round(batch, 6), mode)


def run_cost(stats: Stats, free: Collection[str] = ()) -> Cost | None:
    """What the tokens ``stats`` counts cost, model by model; the ``free`` models' (the local ones) nothing.
    None when a model that was called has no price. A batch run's rows finished live are priced apart."""
    totals = _priced(stats.by_model, free)
    live_part = _priced(stats.live_by_model, free)
    if totals is None or live_part is None:
        return None
    only_free = bool(free) and set(stats.by_model) <= set(free)
    rows = stats.finished_live if stats.mode == "batch" else 0
    parts = (round(live_part[0], 6), round(live_part[1], 6)) if rows else (0.0, 0.0)
    return Cost(round(totals[0], 6), round(totals[1], 6), stats.mode, only_free, rows, *parts)


def _priced(models: Mapping[str, ModelStats], free: Collection[str]) -> tuple[float, float] | None:
    """The live and the batch price of ``models``' tokens (None: one of them has no price)."""
    live = batch = 0.0
    for model, used in models.items():
        if model in free or not (used.prompt_tokens or used.output_tokens):
            continue
        price = price_of(model)
        if price is None:
            return None
        live += price.cost(used.prompt_tokens, used.output_tokens)
        batch += price.cost(used.prompt_tokens, used.output_tokens, batch=True)
    return live, batch
