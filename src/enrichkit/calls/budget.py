"""The budget: a run never spends more than ``max_cost`` US$, at the price table's rates.

A live or flex run runs up to its budget: each call goes out only if the spend so far, plus the worst
case of the calls in flight and of this one (a call's prompt and its whole output token limit), stays
within it. While it does not, the call waits for calls in flight to be answered (their real cost is less
than their worst case); once none is in flight and it still does not fit, the run stops cleanly, as a
fatal stop does: the output and failures hold what settled, everything answered is cached, and the
receipt names the estimate and what to do next. The estimate of the first chunk (its packs' prompts, and
the answer tokens the task expects) does not refuse such a run: it is an estimate (output tokens are
counted at the task's limits, and answers are often shorter), and the stop loses nothing. A batch job
cannot stop part-way, so a batch run estimated over the budget is refused before anything is sent, with
the ``--limit`` that fits. A batch run's live calls (its stragglers, rows finished live) pay the live
price, on top of what its jobs spent (``jobs_spent``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from enrichkit.calls.prices import Price, price_of
from enrichkit.errors import EnrichkitError, UserError
from enrichkit.providers.base import Request, Usage, estimate_tokens


class BudgetReached(EnrichkitError):
    """The next call could cross ``max_cost``: the run stops (as a fatal stop); ``hint``: what to do next."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class Budget:
    """``mode``: the run's; its estimate is at the batch price in batch and flex mode, its calls only in
    flex mode (a batch run's calls through the scheduler are live ones)."""

    def __init__(self, limit: float, *, mode: str = "live") -> None:
        self.limit = limit
        self.batch = mode in ("batch", "flex")
        self._calls_batch = mode == "flex"
        self.spent = 0.0
        self.jobs_spent = 0.0  # what a batch run's jobs cost so far
        self.in_flight = 0.0  # the worst cases of the calls sent and not answered yet
        self._calls = 0  # how many those are
        self.estimate: float | None = None
        self.fits: int | None = None  # the rows the budget buys at the estimate's rate
        self._settled = asyncio.Event()  # set when a call in flight is over

    def _price(self, model: str) -> Price:
        price = price_of(model)
        if price is None:
            raise UserError(f"--max-cost: no price is known for model {model!r} (add it with ENRICHKIT_PRICES)")
        return price

    def check_estimate(self, model: str, requests: Sequence[Request], output_tokens: int, rows: int) -> None:
        """Estimate the first chunk's ``rows`` (sent as ``requests``); refuse a batch run over the budget."""
        prompt = sum(estimate_tokens(r.system) + estimate_tokens(r.prompt) + r.media_tokens for r in requests)
        self.estimate = self._price(model).cost(prompt, output_tokens, batch=self.batch)
        if self.estimate <= self.limit:
            return
        self.fits = int(rows * self.limit / self.estimate)
        if self.batch:
            raise UserError(
                f"this run would cost about ${self.estimate:.4f} at the batch price, more than --max-cost"
                f" ${self.limit:g}, and a batch job cannot stop part-way: --limit {self.fits:,} fits the"
                " budget (or raise --max-cost)"
            )

    def job_cost(self, model: str, requests: Sequence[Request], output_tokens: int) -> float:
        """The estimated cost of a batch job of ``requests`` on ``model`` (``output_tokens`` expected), at the
        batch price."""
        prompt = sum(estimate_tokens(r.system) + estimate_tokens(r.prompt) + r.media_tokens for r in requests)
        return self._price(model).cost(prompt, output_tokens, batch=True)

    async def before(self, model: str, request: Request) -> float:
        """Let a call go out only if even its worst case, with the calls in flight, keeps the spend within
        the budget (waiting for calls in flight to be answered while it does not); its worst case, held
        until ``spend`` or ``release``."""
        prompt = estimate_tokens(request.system) + estimate_tokens(request.prompt) + request.media_tokens
        worst = self._price(model).cost(prompt, request.max_output_tokens, batch=self._calls_batch)
        while self.jobs_spent + self.spent + self.in_flight + worst > self.limit and self._calls:
            self._settled.clear()
            await self._settled.wait()
        if self.jobs_spent + self.spent + self.in_flight + worst > self.limit:
            estimated = "" if self.estimate is None else f" (the run was estimated at ${self.estimate:.4f})"
            fits = f", or --limit {self.fits:,} (what the budget buys at the estimate)" if self.fits else ""
            raise BudgetReached(
                f"budget reached: ${self.jobs_spent + self.spent:.4f} spent of --max-cost ${self.limit:g}{estimated},"
                f" and the next call could cost up to ${worst:.4f}",
                "every answer so far is cached: re-run with a higher --max-cost to ask the rest" + fits,
            )
        self.in_flight += worst
        self._calls += 1
        return worst

    def spend(self, model: str, usage: Usage, held: float) -> None:
        """A call that ``before`` held ``held`` for was answered with ``usage``."""
        self.spent += self._price(model).cost(usage.prompt_tokens, usage.output_tokens, batch=self._calls_batch)
        self.release(held)

    def release(self, held: float) -> None:
        """A call that ``before`` held ``held`` for is over (answered, or not: an error is not billed)."""
        self._calls -= 1
        self.in_flight = self.in_flight - held if self._calls else 0.0  # no rounding left over
        self._settled.set()
