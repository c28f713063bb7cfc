"""The dry run's estimate against what a run spends, and whether a budget just above the real spend lets
the run finish (``--max-cost``), on 2,000 roadmap-like rows against the Gemini stub.

    PYTHONPATH=src:tests .venv/bin/python benchmarks/budget_estimate.py     # about a minute

The stub's answers are shorter than the task's limits allow (a tldr of 7 words where 12 may be written),
so the estimate, which counts output tokens at the limits, is high here; a real model's answers land in
between. Tokens are the stub's 4-characters-a-token count, prices those of ``prices.json``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from enrichkit import Task, dry_run, enrich
from enrichkit.providers.gemini import make_client
from enrichkit.testing import GeminiStub
from helpers import TASK, topic_rows

ROWS = 2_000


def main() -> None:
    task, rows = Task.from_file(TASK), topic_rows(ROWS)
    with GeminiStub() as stub, tempfile.TemporaryDirectory() as tmp:
        client = make_client("stub", stub.url)
        plan = dry_run(rows, task, client=client, use_cache=False)
        full = enrich(rows, task, client=client, use_cache=False, progress=False)
        assert plan.cost is not None and full.stats.est_cost is not None
        print(f"{ROWS:,} rows, {plan.calls} packs")
        print(f"prompt tokens   estimated {plan.prompt_tokens:>8,}   spent {full.stats.prompt_tokens:>8,}")
        print(f"output tokens   estimated {plan.output_tokens:>8,}   spent {full.stats.output_tokens:>8,}")
        estimate, spent = plan.cost.live_usd, full.stats.est_cost.live_usd
        print(f"US$ (live)      estimated {estimate:>8.4f}   spent {spent:>8.4f}   ({estimate / spent - 1:+.0%})")
        for share in (1.05, 0.75):
            budget = round(spent * share, 4)
            with warnings.catch_warnings(record=True):
                run = enrich(
                    rows, task, client=client, cache_dir=Path(tmp) / str(share), max_cost=budget, progress=False
                )
            got = run.stats.est_cost.live_usd if run.stats.est_cost else float("nan")
            print(
                f"--max-cost {budget:.4f} ({share:.0%} of the spend): {run.stats.enriched:,} of {ROWS:,} rows"
                f" enriched for ${got:.4f}" + (f"; stopped: {run.stats.stopped}" if run.stats.stopped else "")
            )


if __name__ == "__main__":
    main()
