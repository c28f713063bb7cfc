"""Quality of the local model's answers, the old version (``--old``, default: before issue 36) against
this one, this one with the own-words repair (``engine/own_words.py``: a near-copy of the row
refused once; off by default; ``new +copy``), and this one with packs of several rows against single rows decoded in
parallel.

Data: 30 product reviews written for this benchmark and 100 awesome-python rows (``local_runs``).
Columns, over the rows answered:
- foreign: free-text answers with letters of a script (``enrichkit.task.scripts``) that neither the
  row's inputs nor the task's instruction use (e.g. Chinese in an English summary);
- glued: free-text answers with a glued word: a word (letters only, lowered, after splitting on
  anything else but an apostrophe inside; words with one, contractions and possessives, are skipped)
  that is not in the dictionary, not in the row's inputs, and splits into two dictionary words of two
  letters or more ("isquick" = "is" + "quick"); the dictionary is pyspellchecker's English word
  list (``pip install pyspellchecker``; 160,572 words);
- copies: free text whose ``difflib.SequenceMatcher`` ratio to the row's text (description or
  review, lowered) is above 0.8;
- accuracy: the answer's group (awesome-python: the data's own ``group``) or sentiment (reviews: the
  label written with them) equal to the truth, over all rows (a failed row counts as wrong);
- repaired: rows whose first answer was refused and the repair kept (on +copy: mostly near-copies);
- calls, failed rows, and rows a second (figures under load on a shared machine are approximate).

Run: .venv/bin/python benchmarks/local_quality.py [--old REF] [--datasets reviews30 awesome100]
        [--packs 2 3 5] [--slots N] [--copy] [--threads 2] [--versions old new]
        [--save runs.json]   # --save keeps runs; the same file reuses them
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
from pathlib import Path
from typing import Any

from spellchecker import SpellChecker

from enrichkit.engine.prompt import system_instruction
from enrichkit.providers.local.provider import default_slots
from enrichkit.task.scripts import foreign, scripts
from enrichkit.task.task import Task
from local_runs import DATASETS, OLD, cached_run, runs_file, versions

COPY_RATIO = 0.8

TRUTH = {"demo20": ("group", "category"), "awesome100": ("group", "category"), "reviews30": ("sentiment", "sentiment")}
TEXT = {"demo20": ("description", "tldr"), "awesome100": ("description", "tldr"), "reviews30": ("review", "summary")}

_WORDS = SpellChecker().word_frequency.dictionary

_WORD = r"[^\W\d_]+(?:'[^\W\d_]+)*"  # letters, with an apostrophe inside (a contraction is not glued)


def glued(text: str, inputs: str) -> list[str]:
    """The glued words of ``text`` (see the module's docstring)."""
    known = set(re.findall(_WORD, inputs.lower()))
    out = []
    for word in re.findall(_WORD, text):
        lowered = word.lower()
        if len(lowered) < 4 or "'" in lowered or lowered in _WORDS or lowered in known:
            continue
        if any(lowered[:i] in _WORDS and lowered[i:] in _WORDS for i in range(2, len(lowered) - 1)):
            out.append(word)
    return out


def score(dataset: str, res: dict[str, Any]) -> dict[str, Any]:
    make_rows, task_path, inputs = DATASETS[dataset]
    rows = make_rows()
    task = Task.from_file(task_path)
    task_scripts = scripts(system_instruction(task))
    truth, answer_field = TRUTH[dataset]
    source, text_field = TEXT[dataset]
    out: dict[str, Any] = {"foreign": [], "glued": [], "copies": 0, "right": 0, "answered": 0}
    for row in rows:
        answer = res["answers"].get(str(row["id"])) or {}
        text = answer.get(text_field)
        if not isinstance(text, str):
            continue
        out["answered"] += 1
        out["right"] += answer.get(answer_field) == row[truth]
        row_text = " ".join(str(row[k]) for k in inputs)
        if foreign(text, task_scripts | scripts(row_text)):
            out["foreign"].append(text)
        if words := glued(text, row_text):
            out["glued"].append(f"{words}: {text}")
        out["copies"] += difflib.SequenceMatcher(None, text.lower(), str(row[source]).lower()).ratio() > COPY_RATIO
    out["rows"] = len(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default=OLD, help=f"git ref of the version to compare with (default {OLD})")
    parser.add_argument("--datasets", nargs="+", default=["reviews30", "awesome100"])
    parser.add_argument("--packs", nargs="*", type=int, default=[], help="pack sizes to try on the new version")
    parser.add_argument("--slots", type=int, default=default_slots(), help="the new version's slots (default: its own)")
    parser.add_argument("--save", type=Path, help="keep the runs in this JSON file (and reuse those it holds)")
    parser.add_argument("--copy", action="store_true", help="also run the new version with own words on (+copy)")
    parser.add_argument("--show", action="store_true", help="print the foreign-script and glued answers")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp's threads (1: the least CPU a row)")
    parser.add_argument("--versions", nargs="+", default=["old", "new"], choices=["old", "new"])
    args = parser.parse_args()
    folder, srcs = versions(args.old)
    saved = runs_file(args.save)
    with folder:
        print(f"old = {args.old}, new = this tree ({args.slots} slots)")
        head = f"{'dataset':<11} {'run':<12} {'foreign':>7} {'glued':>5} {'copies':>6} {'accuracy':>8} {'repaired':>8}"
        print(head + f" {'calls':>5} {'failed':>6} {'rows/s':>7}")
        for dataset in args.datasets:
            modes: list[tuple[str, int | None, int, bool | None]] = [
                ("old", None, 1, None),
                ("new", args.slots, 1, None),
            ]
            modes += [("new", args.slots, 1, True)] if args.copy else []
            modes += [("new", args.slots, p, None) for p in args.packs]
            for version, slots, pack, own_words in modes:
                if version not in args.versions:
                    continue
                prefix = "warm" if version == "new" else None
                res = cached_run(
                    saved, args.save, srcs[version], version, dataset, slots, pack, own_words, prefix, args.threads
                )
                s = score(dataset, res)
                label = version + (f" pack {pack}" if pack > 1 else "") + (" +copy" if own_words else "")
                print(
                    f"{dataset:<11} {label:<12} {len(s['foreign']):>7} {len(s['glued']):>5} {s['copies']:>6}"
                    f" {100 * s['right'] / s['rows']:>7.1f}% {res.get('repaired', 0):>8} {res.get('calls', 0):>5}"
                    f" {s['rows'] - s['answered']:>6} {len(res['answers']) / res['seconds']:>7.3f}"
                )
                if args.show:
                    for line in s["foreign"] + s["glued"]:
                        print("    " + json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    main()
