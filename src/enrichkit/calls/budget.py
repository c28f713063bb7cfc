"""The budget: a run never spends more than ``max_cost`` US$, at the price table's rates.

Before the first call the run's estimate (every pack of the first chunk: its prompt, and the answer
tokens the task expects) is checked; a run that would cost more is refused with nothing sent. While
it runs, each call's real usage is added as it returns, and a call goes out only if the spend so far
plus that call's worst case (its prompt and its whole output token limit) stays within the budget;
otherwise the run stops cleanly, as a fatal stop does: the output and failures hold what settled.
Batch jobs are checked against the estimate (at the batch price) before they are submitted.
"""

from __future__ import annotations

from collections.abc import Sequence

from enrichkit.calls.prices import Price, price_of
from enrichkit.errors import EnrichkitError, UserError
from enrichkit.providers.base import Request, Usage, estimate_tokens


class BudgetReached(EnrichkitError):
    """The next call could cross ``max_cost``: the run stops (as a fatal stop)."""


class Budget:
    def __init__(self, limit: float, *, batch: bool = False) -> None:
        self.limit = limit
        self.batch = batch
        self.spent = 0.0

    def _price(self, model: str) -> Price:
        price = price_of(model)
        if price is None:
            raise UserError(f"--max-cost: no price is known for model {model!r} (add it with ENRICHKIT_PRICES)")
        return price

    def check_estimate(self, model: str, requests: Sequence[Request], output_tokens: int) -> None:
        """Refuse a run whose estimate is over the budget before anything is sent."""
        prompt = sum(estimate_tokens(r.system) + estimate_tokens(r.prompt) for r in requests)
        estimate = self._price(model).cost(prompt, output_tokens, batch=self.batch)
        if estimate > self.limit:
            raise UserError(
                f"this run would cost about ${estimate:.4f}, more than --max-cost ${self.limit:g}"
                " (raise it, or enrich fewer rows with --limit)"
            )

    def before(self, model: str, request: Request) -> None:
        """Let a call go out only if even its worst case keeps the spend within the budget."""
        prompt = estimate_tokens(request.system) + estimate_tokens(request.prompt)
        worst = self._price(model).cost(prompt, request.max_output_tokens, batch=self.batch)
        if self.spent + worst > self.limit:
            raise BudgetReached(
                f"budget reached: ${self.spent:.4f} spent of --max-cost ${self.limit:g},"
                f" and the next call could cost up to ${worst:.4f}"
            )

    def spend(self, model: str, usage: Usage) -> None:
        self.spent += self._price(model).cost(usage.prompt_tokens, usage.output_tokens, batch=self.batch)
