"""Which part of the local provider's grammar changes an answer: the same rows through this version with
each part turned off in turn, in one process (one model load), one slot (so batching cannot change an
answer either), temperature 0.

Variants: ``default``; ``any-script`` (free text's words may hold any character: no script limit,
``grammar.free_text_class``); ``no-slack`` (free text stops at its ``maxWords``, no words over it to be
cut back: ``grammar.word_slack`` 0); ``neither`` (both off, the grammar of the version before issue 36
in these two respects). Prints, per variant, the accuracy against the data's truth (``local_quality``'s
``TRUTH``) and the output tokens a row; then every row whose answer differs between variants.

Run: .venv/bin/python benchmarks/local_variants.py [--dataset reviews30] [--ids r13 r22 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from enrichkit import Task, aenrich
from enrichkit.providers.local import grammar, provider
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.weights import embedded_model_path
from local_quality import TEXT, TRUTH
from local_runs import DATASETS

VARIANTS = {"default": (False, False), "any-script": (True, False), "no-slack": (False, True), "neither": (True, True)}


@contextmanager
def variant(any_script: bool, no_slack: bool) -> Iterator[None]:
    names = [(provider, "free_text_class"), (grammar, "word_slack"), (provider, "word_slack")]
    saved = [getattr(module, name) for module, name in names]
    if any_script:
        vars(provider)["free_text_class"] = lambda text: grammar.ANY_WORD_CLASS
    if no_slack:
        vars(grammar)["word_slack"] = vars(provider)["word_slack"] = lambda words: 0
    try:
        yield
    finally:
        for (module, name), value in zip(names, saved, strict=True):
            vars(module)[name] = value


async def answers(llm: LocalProvider, task: Task, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], float]:
    with tempfile.TemporaryDirectory() as cache:
        result = await aenrich(rows, task, provider=llm, pack_size=1, cache_dir=cache, concurrency=1, progress=False)
    return {str(r["id"]): r for r in result.rows}, result.stats.output_tokens / max(1, len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="reviews30", choices=list(DATASETS))
    parser.add_argument("--ids", nargs="*", help="only these rows (default: all)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    make_rows, task_path, inputs = DATASETS[args.dataset]
    truth, field = TRUTH[args.dataset]
    text = TEXT[args.dataset][1]
    data = [r for r in make_rows() if not args.ids or r["id"] in args.ids]
    rows = [{"id": r["id"], **{k: r[k] for k in inputs}} for r in data]
    task = Task.from_file(task_path)
    llm = LocalProvider(embedded_model_path(), threads=2, slots=1, prefix_dir=Path(tempfile.mkdtemp()))
    got: dict[str, dict[str, Any]] = {}
    for name in args.variants:
        with variant(*VARIANTS[name]):
            got[name], tokens = asyncio.run(answers(llm, task, rows))
        right = sum(got[name].get(r["id"], {}).get(field) == r[truth] for r in data)
        print(
            f"{name:<11} accuracy {right}/{len(data)} ({100 * right / len(data):.1f} %),"
            f" {tokens:.1f} output tokens a row"
        )
    for r in data:
        seen = {name: (got[name][r["id"]].get(field), got[name][r["id"]].get(text)) for name in args.variants}
        if len({v[0] for v in seen.values()}) > 1:
            print(f"{r['id']} (truth {r[truth]}): " + " ".join(r[k] for k in inputs))
            for name, (value, said) in seen.items():
                print(f"    {name:<11} {value}: {said}")


if __name__ == "__main__":
    main()
