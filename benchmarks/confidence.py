"""How well a confidence ranks right answers above wrong ones, and what escalating the doubtful rows is worth.

Input, either:
- an enrichkit output file (.jsonl or .csv) with a ``_confidence`` column, the answer column and the
  known label column (``--answer category --truth group``: the demo's task on awesome-python rows, whose
  own ``group`` is the list's answer); rows without a confidence are counted and left out;
- or the direct-provider answers of ``local_confidence.py`` (``--tokens FILE``), whose confidence is
  computed here from the answer tokens, in each variant of ``VARIANTS``.

Figures, per confidence: rows, accuracy, AUROC of the confidence for right against wrong (ties count
one half), the accuracy of the most confident half (ties broken by file order) against the whole, the
expected calibration error over ten bins, and the cascade's worth: a stronger model that answers the
true label (what a stub of it would) fixes every wrong row it is given, so escalating the 30 % least
confident rows fixes as many rows as are wrong among them, against 30 % drawn at random (its expected
figure, and the mean of 1000 seeded draws) on the same rows; its ceiling, were every escalated row
wrong, is 1 / the share of rows wrong (below 2 where over half the answers are wrong). ``--png`` draws
the reliability diagram of the first confidence (accuracy per confidence bin, with the rows in each).

Run (--png needs matplotlib: pip install -e ".[bench]"):
     .venv/bin/python benchmarks/confidence.py --tokens benchmarks/out/local-confidence.jsonl --png confidence.png
     .venv/bin/python benchmarks/confidence.py --file out/awesome-python.jsonl --answer category --truth group
     .venv/bin/python benchmarks/confidence.py --tokens FIRST.jsonl --compare SECOND.jsonl   (rows right in
     each of two runs, e.g. two wordings of the task, with their median confidence)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from enrichkit.engine.confidence import ConfidenceReader
from enrichkit.providers.base import ALTERNATIVES, Token
from local_runs import DEMO_TASK

ESCALATE = 0.3
BINS = 10
DRAWS = 1000


# -- the figures --------------------------------------------------------------------------------


def auroc(confidence: Sequence[float], right: Sequence[bool]) -> float:
    """The chance that a right row's confidence is above a wrong row's (ties: one half)."""
    pos = [c for c, r in zip(confidence, right, strict=True) if r]
    neg = [c for c, r in zip(confidence, right, strict=True) if not r]
    if not pos or not neg:
        return math.nan
    ranked = sorted((c, i) for i, c in enumerate(confidence))
    ranks = [0.0] * len(confidence)
    start = 0
    while start < len(ranked):
        end = start
        while end + 1 < len(ranked) and ranked[end + 1][0] == ranked[start][0]:
            end += 1
        for k in range(start, end + 1):
            ranks[ranked[k][1]] = (start + end) / 2 + 1
        start = end + 1
    pos_ranks = sum(rank for rank, r in zip(ranks, right, strict=True) if r)
    return (pos_ranks - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def least_confident(confidence: Sequence[float], share: float) -> list[int]:
    """The indices of the ``share`` least confident rows (ties in file order)."""
    k = round(share * len(confidence))
    return sorted(range(len(confidence)), key=lambda i: (confidence[i], i))[:k]


def calibration(confidence: Sequence[float], right: Sequence[bool]) -> list[tuple[float, float, int]]:
    """Per bin of width 1/BINS with rows: mean confidence, accuracy, rows."""
    bins: list[list[int]] = [[] for _ in range(BINS)]
    for i, c in enumerate(confidence):
        bins[min(BINS - 1, int(c * BINS))].append(i)
    return [(sum(confidence[i] for i in b) / len(b), sum(right[i] for i in b) / len(b), len(b)) for b in bins if b]


def figures(confidence: Sequence[float], right: Sequence[bool]) -> dict[str, Any]:
    n, wrong = len(right), sum(not r for r in right)
    top = sorted(range(n), key=lambda i: (-confidence[i], i))[: (n + 1) // 2]
    escalated = least_confident(confidence, ESCALATE)
    k = len(escalated)
    rng = random.Random(0)
    drawn = [sum(not right[i] for i in rng.sample(range(n), k)) for _ in range(DRAWS)]
    fixed, at_random = sum(not right[i] for i in escalated), k * wrong / n
    ece = sum(rows * abs(conf - acc) for conf, acc, rows in calibration(confidence, right)) / n
    return {
        "rows": n,
        "accuracy": sum(right) / n,
        "auroc": auroc(confidence, right),
        "top_half_accuracy": sum(right[i] for i in top) / len(top),
        "ece": ece,
        "escalated": k,
        "fixed_by_confidence": fixed,
        "fixed_at_random": at_random,
        "fixed_at_random_drawn": sum(drawn) / DRAWS,
        "cascade_ratio": fixed / at_random if at_random else math.nan,
        "cascade_ceiling": min(k, wrong) / at_random if at_random else math.nan,
        "median_confidence": sorted(confidence)[n // 2],
    }


# -- confidences from the answer tokens of local_confidence.py ---------------------------------------

Tok = tuple[str, float, list[tuple[str, float]]]  # text, logprob, the most likely alternatives there


def value_span(tokens: Sequence[Tok], text: str, field: str) -> tuple[list[int], str]:
    """The indices of the tokens that write ``field``'s string value in ``text``, and the value."""
    value = json.loads(text)[field]
    start = text.index(f'"{field}":') + len(f'"{field}":')
    start = text.index('"', start) + 1
    end = start + len(json.dumps(value, ensure_ascii=False)) - 2
    at, span = 0, []
    for i, (piece, _, _) in enumerate(tokens):
        if at < end and at + len(piece) > start:
            span.append(i)
        at += len(piece)
    return span, value


def allowed_share(
    tokens: Sequence[Tok], span: Sequence[int], text: str, start: int, values: Sequence[str], temperature: float = 1.0
) -> list[float]:
    """Per token of the value: its probability among the alternatives the enum allows there (those that
    keep the written prefix a prefix of some value, or close it), from the top alternatives kept, after
    dividing their log-probabilities by ``temperature``."""
    shares = []
    offset = sum(len(tokens[i][0]) for i in range(span[0]))
    for i in span:
        piece, logprob, alternatives = tokens[i]
        before = text[start : max(start, offset)]
        lead = text[offset:start] if offset < start else ""  # a quote written with the value's first token

        def fits(alt: str, before: str = before, lead: str = lead) -> bool:
            if not alt.startswith(lead):
                return False
            written = before + alt[len(lead) :]
            return any(v.startswith(written) or written.startswith(v + '"') for v in values)

        kept = {alt: lp for alt, lp in alternatives if fits(alt)}
        kept.setdefault(piece, logprob)
        shares.append(math.exp(logprob / temperature) / sum(math.exp(lp / temperature) for lp in kept.values()))
        offset += len(piece)
    return shares


def variants(values: Sequence[str]) -> dict[str, Callable[[dict[str, Any]], float]]:
    """Each honest way to read a confidence in the category from the answer's tokens; the first is what
    enrichkit reads (``ConfidenceReader``, from the ``ALTERNATIVES`` a provider asks for)."""
    reader = ConfidenceReader(json.loads(DEMO_TASK.read_text(encoding="utf-8"))["output"])

    def enrichkit(doc: dict[str, Any]) -> float:
        tokens = [Token(t, lp, tuple((a, b) for a, b in alts[:ALTERNATIVES])) for t, lp, alts in doc["tokens"] if t]
        found = reader.read(tokens, {None: json.loads(doc["text"])})
        return found[None]["category"]

    def raw(doc: dict[str, Any]) -> tuple[list[Tok], list[int], int]:
        tokens: list[Tok] = [(t, lp, [(a, b) for a, b in alts]) for t, lp, alts in doc["tokens"] if t]
        span, _ = value_span(tokens, doc["text"], "category")
        start = doc["text"].index('"category":') + len('"category":')
        return tokens, span, doc["text"].index('"', start) + 1

    def first(doc: dict[str, Any]) -> float:
        tokens, span, _ = raw(doc)
        return math.exp(tokens[span[0]][1])

    def whole(doc: dict[str, Any]) -> float:
        tokens, span, _ = raw(doc)
        return math.exp(sum(tokens[i][1] for i in span))

    def first_among_values(doc: dict[str, Any]) -> float:
        tokens, span, start = raw(doc)
        return allowed_share(tokens, span, doc["text"], start, values)[0]

    def among_values(temperature: float) -> Callable[[dict[str, Any]], float]:
        def score(doc: dict[str, Any]) -> float:
            tokens, span, start = raw(doc)
            return math.prod(allowed_share(tokens, span, doc["text"], start, values, temperature))

        return score

    def margin(doc: dict[str, Any]) -> float:
        """The first token's lead over the next most likely allowed there (its share minus the runner-up's)."""
        tokens, span, start = raw(doc)
        share = allowed_share(tokens, span, doc["text"], start, values)[0]
        piece, logprob, alternatives = tokens[span[0]]
        runner = max(
            (lp for alt, lp in alternatives if alt != piece and any(v.startswith(alt) for v in values)), default=None
        )
        return share - (share * math.exp(runner - logprob) if runner is not None else 0.0)

    def weakest(doc: dict[str, Any]) -> float:
        tokens, span, start = raw(doc)
        return min(allowed_share(tokens, span, doc["text"], start, values))

    return {
        "enrichkit: weakest share": enrichkit,
        "first token": first,
        "whole value": whole,
        "first token among values": first_among_values,
        "whole value among values": among_values(1.0),
        "among values, T=2": among_values(2.0),
        "among values, T=0.5": among_values(0.5),
        "weakest token among values": weakest,
        "first token's margin": margin,
    }


# -- reading ------------------------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def from_output(path: Path, answer: str, truth: str) -> tuple[dict[str, tuple[list[float], list[bool]]], int]:
    """The ``_confidence`` of an output file's rows and whether each answer is right; rows without one."""
    conf, right, missing = [], [], 0
    for row in read_rows(path):
        value = row.get("_confidence")
        if value in (None, ""):
            missing += 1
            continue
        conf.append(float(value))
        right.append(row.get(answer) == row.get(truth))
    return {"_confidence": (conf, right)}, missing


def from_tokens(path: Path) -> tuple[dict[str, tuple[list[float], list[bool]]], int]:
    """Each variant's confidence of the answers of ``local_confidence.py``; rows that failed (no answer)."""
    values = json.loads(DEMO_TASK.read_text(encoding="utf-8"))["output"]["properties"]["category"]["enum"]
    docs, failed = [], 0
    for doc in read_rows(path):
        try:
            json.loads(doc["text"])["category"]
        except (ValueError, KeyError, TypeError):
            failed += 1
            continue
        docs.append(doc)
    right = [json.loads(d["text"])["category"] == d["truth"] for d in docs]
    return {name: ([score(d) for d in docs], right) for name, score in variants(values).items()}, failed


def compare(before: Path, after: Path) -> None:
    """Per row both files answered (``--tokens`` files of two tasks): right or wrong in each, with the
    median of ``_confidence``'s reading in each."""
    values = json.loads(DEMO_TASK.read_text(encoding="utf-8"))["output"]["properties"]["category"]["enum"]
    score = next(iter(variants(values).values()))
    docs = [{d["id"]: d for d in read_rows(path)} for path in (before, after)]
    kinds: dict[tuple[bool, bool], list[tuple[float, float]]] = {}
    for key in docs[0].keys() & docs[1].keys():
        a, b = docs[0][key], docs[1][key]
        right = tuple(json.loads(d["text"])["category"] == d["truth"] for d in (a, b))
        kinds.setdefault((right[0], right[1]), []).append((score(a), score(b)))
    print(f"rows both answered: {sum(map(len, kinds.values()))} ({before.name} / {after.name})")
    for (first, second), pairs in sorted(kinds.items()):
        medians = [sorted(p[i] for p in pairs)[len(pairs) // 2] for i in (0, 1)]
        print(
            f"{'right' if first else 'wrong'} / {'right' if second else 'wrong'}: {len(pairs):>4} rows,"
            f" median confidence {medians[0]:.2f} / {medians[1]:.2f}"
        )


def draw(path: Path, name: str, confidence: Sequence[float], right: Sequence[bool]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = calibration(confidence, right)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    top.plot([b[0] for b in bins], [b[1] for b in bins], marker="o", label=name)
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    top.set_title(f"Reliability of the confidence, {len(right)} rows")
    bottom.bar([(i + 0.5) / BINS for i in range(BINS)], _counts(confidence), width=0.9 / BINS)
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("rows")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _counts(confidence: Sequence[float]) -> list[int]:
    counts = [0] * BINS
    for c in confidence:
        counts[min(BINS - 1, int(c * BINS))] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="an enrichkit output file with _confidence")
    source.add_argument("--tokens", type=Path, help="the answers of local_confidence.py")
    parser.add_argument("--answer", default="category", help="the answer column (--file)")
    parser.add_argument("--truth", default="group", help="the known label column (--file)")
    parser.add_argument("--png", type=Path, help="draw the reliability diagram of a confidence here")
    parser.add_argument("--draw", help="the confidence to draw (default: the first)")
    parser.add_argument("--compare", type=Path, help="another --tokens file: which rows each answers right")
    args = parser.parse_args()
    if args.compare and args.tokens:
        compare(args.tokens, args.compare)
        return
    runs, missing = from_tokens(args.tokens) if args.tokens else from_output(args.file, args.answer, args.truth)
    print(
        f"{'confidence':<26} {'rows':>4} {'acc':>6} {'AUROC':>6} {'top half':>8} {'gain':>5} {'ECE':>5}"
        f" {'fixed: by conf':>14} {'at random':>9} {'ratio':>5} {'ceiling':>7}"
    )
    for name, (conf, right) in runs.items():
        f = figures(conf, right)
        print(
            f"{name:<26} {f['rows']:>4} {100 * f['accuracy']:>5.1f}% {f['auroc']:>6.3f}"
            f" {100 * f['top_half_accuracy']:>7.1f}% {100 * (f['top_half_accuracy'] - f['accuracy']):>+5.1f}"
            f" {f['ece']:>5.3f} {f['fixed_by_confidence']:>7}/{f['escalated']:<6} {f['fixed_at_random']:>9.1f}"
            f" {f['cascade_ratio']:>5.2f} {f['cascade_ceiling']:>7.2f}"
        )
    print(
        f"left out: {missing} rows ({'no answer' if args.tokens else 'no _confidence'}); gain: the most confident"
        " half's accuracy minus the whole's, in points;"
        f" escalated: the {100 * ESCALATE:.0f}% least confident rows; at random: expected wrong among as many;"
        " ceiling: the ratio if every escalated row were wrong (at most 1 / the share wrong)"
    )
    if args.png:
        name = args.draw or next(iter(runs))
        draw(args.png, name, *runs[name])
        print(f"reliability diagram of {name!r}: {args.png}")


if __name__ == "__main__":
    main()
