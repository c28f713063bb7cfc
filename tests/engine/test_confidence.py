"""Confidence per row from token log-probabilities, flags, the cascade and known answers, at the provider seam."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from enrichkit import FatalProviderError, Task, UserError, enrich
from enrichkit.engine.confidence import closed_fields, is_closed, read_confidence
from enrichkit.options import Escalate
from enrichkit.output.receipt import run_report, run_text
from enrichkit.providers.base import Capabilities, Request, Token
from enrichkit.testing import FunctionProvider, records_of, scored

TASK = Task(
    "Classify each library.",
    ["name"],
    {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["tool", "library", "framework"]},
            "typed": {"type": "boolean"},
            "summary": {"type": "string"},
        },
        "required": ["kind", "typed", "summary"],
    },
)
NAMES = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
ROWS = [{"name": name, "group": "tool" if i % 2 else "library"} for i, name in enumerate(NAMES)]
SURE = {name: 0.3 + 0.1 * i for i, name in enumerate(NAMES)}  # alpha 0.3 ... foxtrot 0.8
LOGPROBS = Capabilities(logprobs=True)


def answer(kind: str = "tool") -> Any:
    """Every row ``kind``; each row's kind has its probability from ``SURE``, typed 0.99."""

    def fn(request: Request) -> Any:
        records = records_of(request)
        items = [
            {"id": r.get("id"), "kind": kind, "typed": True, "summary": f"The {r['name']} {r['name']} library."}
            for r in records
        ]
        names = {r.get("id"): r["name"] for r in records}

        def probability(item: Any, field: str) -> float | None:
            return {"kind": SURE[names[item.get("id")]], "typed": 0.99}.get(field)

        if not any("id" in r for r in records):  # a single row
            items[0].pop("id")
            return scored(items[0], lambda item, field: {"kind": SURE[records[0]["name"]], "typed": 0.99}.get(field))
        return scored(items, probability)

    return fn


def run(provider: FunctionProvider, cache: Path, **options: Any) -> Any:
    return enrich(ROWS, TASK, provider=provider, cache_dir=cache, progress=False, echo=False, **options)


def test_closed_fields_are_enums_booleans_small_integers_and_consts() -> None:
    assert is_closed({"type": "integer", "minimum": 1, "maximum": 10})
    assert not is_closed({"type": "integer", "minimum": 0, "maximum": 1000})
    assert is_closed({"anyOf": [{"enum": ["a", "b"]}, {"type": "null"}]})
    assert is_closed({"type": ["boolean", "null"]})
    assert not is_closed({"type": "string"})
    assert closed_fields(TASK.schema) == ["kind", "typed"]


def test_a_value_is_the_product_of_its_own_tokens_not_of_quotes_or_keys() -> None:
    tokens = [
        Token('[{"id":"r1","kind":"', math.log(0.5)),  # a key's and a quote's token: left out
        Token("frame", math.log(0.6)),
        Token("work", math.log(0.9)),
        Token('","typed":', math.log(0.4)),
        Token("true", math.log(0.8)),
        Token('},{"id":"r2","kind":"tool","typed":false}]', 0.0),
    ]
    got = read_confidence(tokens, ["kind", "typed"], {"r1": {"kind": "framework", "typed": True}, "r2": {}})
    assert got["r1"] == {"kind": pytest.approx(0.54), "typed": pytest.approx(0.8)}
    assert got["r2"] == {}  # r2's values are not among those accepted: nothing is guessed


def test_a_value_other_than_the_accepted_one_gets_no_confidence() -> None:
    reply = scored({"kind": "tool", "typed": True}, {"kind": 0.7, "typed": 0.9})
    assert reply.tokens is not None
    assert read_confidence(reply.tokens, ["kind", "typed"], {None: {"kind": "library", "typed": True}}) == {
        None: {"typed": 0.9}
    }


def test_rows_get_their_lowest_closed_fields_probability_and_a_rerun_shows_it_from_the_cache(tmp_path: Path) -> None:
    provider = FunctionProvider(answer(), capabilities=LOGPROBS)
    first = run(provider, tmp_path)
    assert all(r.logprobs for r in provider.requests)
    assert [r["_confidence"] for r in first.rows] == [pytest.approx(SURE[r["name"]]) for r in ROWS]
    assert [r["_flags"] for r in first.rows] == [None] * len(ROWS)
    again = FunctionProvider(answer(), capabilities=LOGPROBS)
    second = run(again, tmp_path)
    assert again.requests == []
    assert [r["_confidence"] for r in second.rows] == [r["_confidence"] for r in first.rows]
    conf = second.stats.confidence
    assert (conf.rows, conf.below(0.6), conf.median) == (6, 3, 0.5)
    assert "confidence: median 0.50, 3 of 6 rows below 0.6" in run_text(run_report(second.stats, "function", "f"))


def test_no_confidence_is_invented_without_log_probabilities(tmp_path: Path) -> None:
    plain = FunctionProvider(answer())  # Capabilities.logprobs False: none asked, none shown
    result = run(plain, tmp_path / "a")
    assert not any(r.logprobs for r in plain.requests)
    assert "_confidence" not in result.rows[0]
    forced = run(FunctionProvider(answer()), tmp_path / "b", confidence=True)
    assert [r["_confidence"] for r in forced.rows] == [None] * len(ROWS)
    assert forced.stats.confidence.without == len(ROWS)
    off = FunctionProvider(answer(), capabilities=LOGPROBS)
    assert "_confidence" not in run(off, tmp_path / "c", confidence=False).rows[0]
    assert not any(r.logprobs for r in off.requests)


def test_an_answer_from_a_fallback_model_is_flagged(tmp_path: Path) -> None:
    def fn(request: Request, model: str) -> Any:
        if model == "weak":
            return "not json"
        return answer()(request)

    provider = FunctionProvider(fn, model="weak", capabilities=LOGPROBS)
    result = run(provider, tmp_path, fallback=("strong",))
    assert {r["_flags"] for r in result.rows} == {"fallback"}
    assert result.stats.confidence.flags == {"fallback": len(ROWS)}


def test_the_doubtful_rows_escalate_to_the_stronger_model_whose_answer_is_kept_and_cached(tmp_path: Path) -> None:
    strong = FunctionProvider(answer("framework"), model="strong", capabilities=LOGPROBS)
    escalate = Escalate(strong, below=0.55)
    weak = FunctionProvider(answer(), model="weak", capabilities=LOGPROBS)
    result = run(weak, tmp_path, escalate=escalate)
    doubtful = {"alpha", "bravo", "charlie"}  # 0.3, 0.4, 0.5
    asked = {r["name"] for req in strong.requests if req.logprobs for r in records_of(req)}
    assert asked == doubtful
    assert {r["name"]: r["kind"] for r in result.rows} == {
        r["name"]: "framework" if r["name"] in doubtful else "tool" for r in ROWS
    }
    assert {r["name"] for r in result.rows if r["_flags"] == "escalated"} == doubtful
    summary = result.stats.escalation
    assert (summary.model, summary.rows, summary.answered, summary.changed) == ("function:strong", 3, 3, 3)
    assert summary.calls == len(strong.requests)
    assert "escalated: 3 rows below 0.55 to function:strong, 3 answers changed" in run_text(
        run_report(result.stats, "function", "weak")
    )
    # a re-run: every answer from the cache (the stronger one where it escalated), nothing asked again
    weak_again = FunctionProvider(answer(), model="weak", capabilities=LOGPROBS)
    strong_again = FunctionProvider(answer("framework"), model="strong", capabilities=LOGPROBS)
    again = run(weak_again, tmp_path, escalate=Escalate(strong_again, below=0.55))
    assert weak_again.requests == strong_again.requests == []
    assert [r["kind"] for r in again.rows] == [r["kind"] for r in result.rows]


def test_known_answers_are_never_sent_and_their_accuracy_is_given_by_band(tmp_path: Path) -> None:
    provider = FunctionProvider(answer(), capabilities=LOGPROBS)
    result = run(provider, tmp_path, check_against="kind=group")
    assert not any("group" in json.dumps(records_of(r)) for r in provider.requests)
    known = result.stats.known["kind"]
    assert (known.column, known.matched, known.rows) == ("group", 3, 6)
    assert known.bands == {"< 0.6": [1, 3], "0.6-0.9": [2, 3]}
    text = run_text(run_report(result.stats, "function", "f"))
    assert "known answers: kind 3/6 match group (50%)" in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"check_against": "size=group"}, "the task has no output field 'size'"),
        ({"check_against": "kind=name"}, "'name' is an input of the task"),
        ({"check_against": "kind=missing"}, "row 1 has no column 'missing'"),
        ({"check_against": "kind"}, "write FIELD=COLUMN"),
        ({"escalate": Escalate("strong", below=0.5)}, "no confidence (no other signal is measured yet)"),
        ({"escalate": Escalate("strong"), "confidence": False}, "drop --no-confidence"),
    ],
)
def test_bad_options_are_refused_before_anything_is_sent(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    provider = FunctionProvider(answer())  # gives no log-probabilities
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(provider, tmp_path, **options)
    assert provider.requests == []


@pytest.mark.parametrize("below", [0, -0.1, 1.5])
def test_an_escalation_threshold_outside_zero_to_one_is_refused(below: float) -> None:
    with pytest.raises(UserError, match=r"escalate below must be in \(0, 1\]"):
        Escalate("strong", below=below)


def test_an_escalation_model_that_does_not_exist_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    def unknown(request: Request) -> int:
        raise FatalProviderError("models/nope is not found")

    strong = FunctionProvider(answer(), model="nope", capabilities=LOGPROBS, count=unknown)
    weak = FunctionProvider(answer(), model="weak", capabilities=LOGPROBS)
    with pytest.raises(UserError, match="--escalate-model function:nope: models/nope is not found"):
        run(weak, tmp_path, escalate=Escalate(strong, below=0.5))
    assert weak.requests == strong.requests == []


def test_a_model_that_refused_log_probabilities_is_remembered_and_not_asked_again(tmp_path: Path) -> None:
    def refusing(request: Request) -> Any:
        return answer()(Request(request.system, request.prompt, request.schema, request.max_output_tokens))

    class Refusing(FunctionProvider):
        """A provider that repeated a call whose log-probabilities the model refused, without them."""

        logprobs_refused = frozenset({"function"})

    provider = Refusing(refusing, capabilities=LOGPROBS)
    first = run(provider, tmp_path)
    assert first.stats.confidence.no_logprobs == ["function:function"]
    assert "log-probabilities: function:function gives none" in run_text(run_report(first.stats, "function", "f"))
    assert json.loads((tmp_path / "no-logprobs.json").read_text()) == ["function:function"]
    later = FunctionProvider(answer(), capabilities=LOGPROBS)
    second = run(later, tmp_path, use_cache=False)
    assert later.requests and not any(r.logprobs for r in later.requests)
    assert "_confidence" not in second.rows[0]
