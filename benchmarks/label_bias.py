"""What taking out the embedded model's lean to some groups would do, and where it hurts: computed without
the model from ``local_confidence.py``'s answer files (asked whole, each token with its 20 most likely
alternatives, llama.cpp's raw distribution), as ``providers/local/priors.py`` corrects a decision.

At the category's first token, each row's distribution over the groups' first tokens (``Data`` holds both
``Data & Science`` and ``Database & Storage``; within such a family the model's own choice stands) is
divided by a prior raised to ``alpha``: the mean of those distributions over the rows of ``--prior-from``
(default: the scored rows themselves, as a run learns it from its own rows), floored at ``FLOOR``.

Printed: accuracy as answered and corrected at alpha 0.5 and 1, on the rows of ``FILE``; then on skewed
samples, each the rows of one group plus a quarter as many from the others (~80 % one group, from both
files): the case the correction assumes away (no value truly holding most rows).

Run: PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/label_bias.py FILE [--prior-from FILE2] [--also FILE3]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
from pathlib import Path
from typing import Any

from enrichkit.providers.local.priors import FLOOR
from local_runs import DEMO_TASK

KEY = '"category":"'
Row = tuple[str, dict[str, float], str]  # truth, first-token shares by group, the answer


def groups() -> list[str]:
    task = json.loads(DEMO_TASK.read_text(encoding="utf-8"))
    return list(task["output"]["properties"]["category"]["enum"])


def first_shares(doc: dict[str, Any], labels: list[str]) -> dict[str, float]:
    """The row's shares of the groups' first tokens at the category's value, by token text."""
    text = "".join(t[0] for t in doc["tokens"])
    start, at = text.find(KEY) + len(KEY), 0
    for token in doc["tokens"]:
        if at + len(token[0]) > start:
            break
        at += len(token[0])
    skip = start - at  # the token may begin with the key's last characters
    probs: dict[str, float] = {}
    for alt, logprob in token[2]:
        rest = alt[skip:]
        if alt.startswith(token[0][:skip]) and rest and any(label.startswith(rest) for label in labels):
            probs[rest] = probs.get(rest, 0.0) + math.exp(logprob)
    total = sum(probs.values())
    return {k: v / total for k, v in probs.items()} if total else {}


def load(path: Path, labels: list[str]) -> list[Row]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(d["truth"], first_shares(d, labels), json.loads(d["text"])["category"]) for d in rows]


def prior_of(rows: list[Row]) -> dict[str, float]:
    prior: dict[str, float] = collections.defaultdict(float)
    for _, shares, _ in rows:
        for token, share in shares.items():
            prior[token] += share / len(rows)
    return prior


def accuracy(rows: list[Row], prior: dict[str, float], alpha: float, labels: list[str]) -> float:
    right = 0
    for truth, shares, answer in rows:
        pick = answer
        if shares and alpha:
            best = max(shares, key=lambda t: shares[t] / max(prior.get(t, 0.0), FLOOR) ** alpha)
            if not answer.startswith(best):  # another family: its first group (the family's own choice unknown)
                pick = next(label for label in labels if label.startswith(best))
        right += pick == truth
    return right / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--prior-from", type=Path, help="learn the prior on these rows instead")
    parser.add_argument("--also", type=Path, help="more rows for the skewed samples")
    args = parser.parse_args()
    labels = groups()
    rows = load(args.file, labels)
    prior = prior_of(load(args.prior_from, labels) if args.prior_from else rows)
    corrected = "; ".join(f"corrected, alpha {a}: {accuracy(rows, prior, a, labels):.1%}" for a in (0.5, 1.0))
    print(f"{len(rows)} rows: as answered {accuracy(rows, prior, 0, labels):.1%}; {corrected}")
    pool = rows + (load(args.also, labels) if args.also else [])
    by_group = collections.defaultdict(list)
    for row in pool:
        by_group[row[0]].append(row)
    rng = random.Random(0)
    print("skewed samples (~80 % one group; prior from the sample):")
    for group in sorted(by_group, key=lambda g: -len(by_group[g]))[:4]:
        others = [r for g, rs in by_group.items() if g != group for r in rs]
        sample = by_group[group] + rng.sample(others, max(1, len(by_group[group]) // 4))
        p = prior_of(sample)
        figures = [f"{accuracy(sample, p, a, labels):.1%}" for a in (0, 0.5, 1.0)]
        print(f"  {group:<18} {len(sample):>3} rows: as answered {figures[0]}, alpha 0.5 {figures[1]}, 1 {figures[2]}")


if __name__ == "__main__":
    main()
