"""Does llama.cpp's n-gram self-speculation (no draft model: a draft is the tokens that followed the last
match of the current n-gram in the slot's own tokens, checked by the model in one batch) save the
embedded model CPU time on the demo's task? The tldrs often copy the row's description, so drafts
should often be right.

Two child processes on this version, one slot, one thread (CPU time is then the work done), the
system prompt's state on disk, the demo's rows 2-11 after an untimed first row: without speculation
and with ``COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE`` (``--n`` tokens matched, ``--m`` drafted). Prints CPU
seconds, output tokens, and the rows whose answers differ (speculation at temperature 0 should change
none; a batch's arithmetic may). ``--compare layout`` instead compares the weights as llama.cpp repacks
them for the CPU (its default) with the GGUF's own layout (``no_extra_bufts``: no repacking, less memory).

Run: .venv/bin/python benchmarks/local_draft.py [--n 3] [--m 8] [--compare draft|layout]
"""

from __future__ import annotations

import argparse
from typing import Any

from local_runs import DEMO_TASK, PREFIXES, ROOT, child, demo_rows

_CHILD = r"""
import asyncio, json, resource, sys, tempfile, time
from pathlib import Path
from enrichkit import Task, aenrich
from enrichkit.providers.local import provider as local
args = json.loads(sys.argv[1])
build = local.LocalProvider._load
def load(self, folder):
    xllamacpp = local.runtime()
    server = xllamacpp.Server
    def speculating(params):
        params.no_extra_bufts = args["draft"] == "layout"
        if args["draft"] == "draft":
            params.speculative.types = [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
            params.speculative.ngram_simple.size_n = args["n"]
            params.speculative.ngram_simple.size_m = args["m"]
            params.speculative.ngram_simple.min_hits = 1
            params.speculative.draft.n_max, params.speculative.draft.n_min = args["m"], 0
        return server(params)
    xllamacpp.Server = speculating
    try:
        return build(self, folder)
    finally:
        xllamacpp.Server = server
local.LocalProvider._load = load
task = Task.from_file(args["task"])
llm = local.LocalProvider(local.embedded_model_path(), threads=1, slots=1, prefix_dir=Path(args["prefixes"]))
def run(rows):
    with tempfile.TemporaryDirectory() as cache:
        return asyncio.run(aenrich(rows, task, provider=llm, cache_dir=cache, concurrency=1, progress=False))
run(args["rows"][:1])
cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
result = run(args["rows"][1:11])
print(json.dumps({"cpu_seconds": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu,
                  "output_tokens": result.stats.output_tokens,
                  "answers": {r["id"]: [r.get("category"), r.get("tldr")] for r in result.rows}}))
"""


def run(draft: str, n: int, m: int) -> dict[str, Any]:
    rows = [{"id": r["id"], "name": r["name"], "description": r["description"]} for r in demo_rows()]
    PREFIXES.mkdir(parents=True, exist_ok=True)
    args = {"task": str(DEMO_TASK), "rows": rows, "draft": draft, "n": n, "m": m, "prefixes": str(PREFIXES)}
    return child(ROOT / "src", args, _CHILD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--m", type=int, default=8)
    parser.add_argument("--compare", choices=["draft", "layout"], default="draft")
    args = parser.parse_args()
    runs = {label: run(label, args.n, args.m) for label in ("plain", args.compare)}
    for label, r in runs.items():
        print(f"{label:<6} {r['cpu_seconds']:>6.1f} CPU s for 10 rows, {r['output_tokens']} output tokens")
    for key, answer in runs["plain"]["answers"].items():
        if runs[args.compare]["answers"].get(key) != answer:
            print(f"differs: {key}: {answer} / {runs[args.compare]['answers'].get(key)}")


if __name__ == "__main__":
    main()
