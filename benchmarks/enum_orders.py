"""Does asking the embedded model a closed field with its values in other orders rank right answers above
wrong ones better than one order (issue 32's cascade: twice the wrong rows of a random 30 %)?

The demo's task is written again with the ``category`` enum, and the description's list of the groups'
sections, reversed and shuffled (seed 7): ``tasks DIR``. Each task is answered on the same 200 held-out
rows by ``local_confidence.py --staged`` (as a run asks: in stages, debiased by priors learned on these
rows alone; each order has its own priors, its prompt being another). ``score`` reads each answer's
probability of every value from the decisions' alternatives (a value's first token's share split evenly
among the values it starts, the decisions the answer took followed down), averages them over the
orders, and prints for each order alone and for the averages (the answer: the most probable value;
its confidence: that probability) the figures of ``confidence.py``.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/enum_orders.py tasks benchmarks/out/orders
    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/local_confidence.py --rows 200 --held-out \
        --threads 1 --slots 2 --staged [--task benchmarks/out/orders/ORDER.json] --out ORDER.jsonl
        (the demo's own task, then each of the two; about 13 minutes each on two cores)
    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/enum_orders.py score DEMO.jsonl REVERSED.jsonl \
        [SHUFFLED.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path
from typing import Any

from confidence import figures
from local_runs import DEMO_TASK

FIELD = "category"
SECTIONS = " The sections of the awesome-python list each group holds: "


def write_tasks(folder: Path) -> None:
    """The demo's task with its enum and the description's sections reversed, and shuffled (seed 7)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(enum())
    shuffled = list(range(n))
    random.Random(7).shuffle(shuffled)
    for name, order in (("reversed", list(reversed(range(n)))), ("shuffled", shuffled)):
        task = json.loads(DEMO_TASK.read_text(encoding="utf-8"))
        field = task["output"]["properties"][FIELD]
        head, rest = field["description"].split(SECTIONS, 1)
        sections = rest.rstrip(".").split("; ")
        assert len(sections) == n, "one section list a value"
        field["enum"] = [field["enum"][i] for i in order]
        field["description"] = head + SECTIONS + "; ".join(sections[i] for i in order) + "."
        task["name"] = f"{task['name']}-{name}"
        (folder / f"{name}.json").write_text(json.dumps(task, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(folder / f"{name}.json")


def enum() -> list[str]:
    return list(json.loads(DEMO_TASK.read_text(encoding="utf-8"))["output"]["properties"][FIELD]["enum"])


def values(row: dict[str, Any], allowed: list[str]) -> tuple[str | None, dict[str, float]]:
    """The answer's value and the probability of each allowed value, from the decisions' alternatives."""
    answer = json.loads(row["text"]).get(FIELD) if row.get("text") else None
    out = dict.fromkeys(allowed, 0.0)
    head, started, written, mass = "", False, "", 1.0
    for text, logprob, top in row["tokens"]:
        if not started:
            head += text
            started = head.endswith(f'"{FIELD}":"')
            continue
        if not top:  # forced: the rest of a value its decisions fixed
            written += text
            continue
        total = sum(math.exp(lp) for _, lp in top)
        for token, lp in top:
            fits = [v for v in allowed if v.startswith(written + token)]
            if token != text and fits:
                for v in fits:
                    out[v] += mass * math.exp(lp) / total / len(fits)
        mass *= math.exp(logprob) / total
        written += text
    if answer in out:
        out[answer] += mass
    total = sum(out.values()) or 1.0
    return answer, {v: p / total for v, p in out.items()}


def score(paths: list[Path]) -> None:
    allowed = enum()
    runs = [{r["id"]: r for r in map(json.loads, p.read_text(encoding="utf-8").splitlines())} for p in paths]
    ids = [i for i in runs[0] if all(i in run for run in runs)]
    truth = {i: runs[0][i]["truth"] for i in ids}
    read = [{i: values(run[i], allowed) for i in ids} for run in runs]
    print(f"{len(ids)} rows answered in every order")
    print(f"{'':<34} {'acc':>6} {'AUROC':>6} {'top half':>8} {'ratio':>6} {'ceiling':>7}")
    for path, got in zip(paths, read, strict=True):
        conf = [got[i][1].get(got[i][0] or "", 0.0) for i in ids]
        show(path.name, conf, [got[i][0] == truth[i] for i in ids])
    for k in range(2, len(runs) + 1):
        conf, right = [], []
        for i in ids:
            mean = {v: sum(got[i][1][v] for got in read[:k]) / k for v in allowed}
            best = max(allowed, key=lambda v: mean[v])
            conf.append(mean[best])
            right.append(best == truth[i])
        show(f"mean of the first {k} orders", conf, right)
    print("ratio: wrong rows among the 30 % least confident / expected among 30 % at random; ceiling: if all were")


def show(name: str, conf: list[float], right: list[bool]) -> None:
    f = figures(conf, right)
    print(
        f"{name:<34} {100 * f['accuracy']:>5.1f}% {f['auroc']:>6.3f} {100 * f['top_half_accuracy']:>7.1f}%"
        f" {f['cascade_ratio']:>6.2f} {f['cascade_ceiling']:>7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tasks").add_argument("folder", type=Path)
    commands.add_parser("score").add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "tasks":
        write_tasks(args.folder)
    else:
        score(args.files)


if __name__ == "__main__":
    main()
