"""Confidence per row from token log-probabilities, flags, the cascade and known answers, at the provider seam."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from enrichkit import FatalProviderError, Task, UserError, dry_run, enrich
from enrichkit.engine.confidence import ConfidenceReader, closed_fields, is_closed, written_forms
from enrichkit.options import Escalate
from enrichkit.output.receipt import dry_run_report, dry_run_text, run_report, run_text
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
READER = ConfidenceReader(TASK.schema)


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
    got = READER.read(tokens, {"r1": {"kind": "framework", "typed": True}, "r2": {}})
    assert got["r1"] == {"kind": pytest.approx(0.54), "typed": pytest.approx(0.8)}
    assert got["r2"] == {}  # r2's values are not among those accepted: nothing is guessed


def top(*pairs: tuple[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple((text, math.log(p)) for text, p in pairs)


def test_with_alternatives_a_value_is_its_share_among_the_allowed_values_where_it_was_decided() -> None:
    tokens = [
        Token('[{"id":"r1","kind":"', 0.0, top(('[{"id":"r1","kind":"', 1.0))),
        # "Library" and "lib " write no allowed value: left out; "tool" does: 0.5 / (0.5 + 0.2)
        Token("lib", math.log(0.5), top(("lib", 0.5), ("Library", 0.25), ("tool", 0.2), ("lib ", 0.05))),
        Token("rary", math.log(0.9), top(("rary", 0.9), ("erty", 0.1))),  # no rival: decided before
        Token('","typed":', 0.0, top(('","typed":', 1.0))),
        Token("true", math.log(0.6), top(("true", 0.6), ("false", 0.3), ("True", 0.1))),
        Token('},{"id":"r2","kind":"', 0.0, top(('},{"id":"r2","kind":"', 1.0))),
        Token("tool", math.log(0.4), ()),  # no alternatives: the product of its tokens instead
        Token('","typed":false}]', 0.0, ()),
    ]
    got = READER.read(tokens, {"r1": {"kind": "library", "typed": True}, "r2": {"kind": "tool", "typed": False}})
    assert got["r1"] == {"kind": pytest.approx(0.5 / 0.7, abs=1e-4), "typed": pytest.approx(0.6 / 0.9, abs=1e-4)}
    assert got["r2"] == {"kind": pytest.approx(0.4), "typed": pytest.approx(1.0)}


def test_a_value_decided_on_a_later_token_counts_that_token() -> None:
    task = Task("t", ["name"], {"type": "object", "properties": {"area": {"enum": ["web framework", "web crawling"]}}})
    tokens = [
        Token('{"area":"', 0.0, top(('{"area":"', 1.0))),
        Token("web", math.log(0.9), top(("web", 0.9), ("Web", 0.1))),
        Token(" crawling", math.log(0.3), top((" framework", 0.6), (" crawling", 0.3), (" scraping", 0.1))),
        Token('"}', 0.0, top(('"}', 1.0))),
    ]
    got = ConfidenceReader(task.schema).read(tokens, {None: {"area": "web crawling"}})
    assert got == {None: {"area": pytest.approx(0.3 / 0.9, abs=1e-4)}}


def test_the_allowed_values_are_written_as_an_answer_writes_them() -> None:
    assert written_forms({"type": ["boolean", "null"]}) == {"true", "false", "null"}
    assert written_forms({"type": "integer", "minimum": 1, "maximum": 3}) == {"1", "2", "3"}
    assert written_forms({"anyOf": [{"enum": ['a "b"']}, {"type": "null"}]}) == {'a \\"b\\"', "null"}
    assert written_forms({"const": "x"}) == {"x"}


@pytest.mark.parametrize(
    "text",
    [
        '[{"id": "r1", "kind": "tool", "typed": true, "summary": "s"},\n'
        ' {"id": "r2", "kind": "library", "typed": false}]',
        '[{"kind": "tool", "typed": true, "id": "r1"}, {"typed": false, "id": "r2", "kind": "library"}]',  # id last
        '[{"id": "r1", "summary": "uses {braces} and \\"kind\\": x", "kind": "tool", "typed": true},'
        ' {"id": "r2", "kind": "library", "typed": false}]',
        'Here: {"id": "r9", "kind": "tool"} then ```json\n[{"id": "r1", "kind": "tool", "typed": true},'
        ' {"id": "r2", "kind": "library", "typed": false}]\n```',
    ],
)
def test_each_item_gets_its_own_values_however_the_answer_is_written(text: str) -> None:
    tokens = [Token(piece, math.log(0.5) if piece in ("tool", "library") else 0.0) for piece in _pieces(text)]
    got = READER.read(tokens, {"r1": {"kind": "tool", "typed": True}, "r2": {"kind": "library", "typed": False}})
    assert got == {"r1": {"kind": 0.5, "typed": 1.0}, "r2": {"kind": 0.5, "typed": 1.0}}


def _pieces(text: str) -> list[str]:
    """``text`` cut before and after each "tool" and "library"."""
    return [piece for piece in re.split(r"(tool|library)", text) if piece]


def test_a_value_other_than_the_accepted_one_gets_no_confidence() -> None:
    reply = scored({"kind": "tool", "typed": True}, {"kind": 0.7, "typed": 0.9})
    assert reply.tokens is not None
    assert READER.read(reply.tokens, {None: {"kind": "library", "typed": True}}) == {None: {"typed": 0.9}}


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
    off = FunctionProvider(answer(), capabilities=LOGPROBS)
    assert "_confidence" not in run(off, tmp_path / "c", confidence=False).rows[0]
    assert not any(r.logprobs for r in off.requests)
    free = Task("Summarise.", ["name"], {"type": "object", "properties": {"summary": {"type": "string"}}})
    text_only = enrich(
        ROWS,
        free,
        provider=FunctionProvider(answer()),
        cache_dir=tmp_path / "d",
        progress=False,
        echo=False,
        confidence=True,
    )
    assert [r["_confidence"] for r in text_only.rows] == [None] * len(ROWS)  # free text: none measured
    assert text_only.stats.calls == 1


def differing(names: set[str]) -> Any:
    """Answers without log-probabilities whose kind, for ``names``, differs from the first call's on later calls."""
    calls = 0

    def fn(request: Request) -> Any:
        nonlocal calls
        calls += 1
        records = records_of(request)
        items = [
            {
                "id": r.get("id"),
                "kind": "library" if calls > 1 and r["name"] in names else "tool",
                "typed": True,
                "summary": f"The {r['name']} {r['name']} library.",
            }
            for r in records
        ]
        return items if len(records) > 1 else {k: v for k, v in items[0].items() if k != "id"}

    return fn


def test_without_log_probabilities_asked_confidence_is_the_agreement_of_two_packings(tmp_path: Path) -> None:
    provider = FunctionProvider(differing({"alpha", "bravo"}))
    result = run(provider, tmp_path, confidence=True)
    first, second = (records_of(r) for r in provider.requests)
    assert {r["name"] for r in first} == {r["name"] for r in second} == set(NAMES)
    assert [r["name"] for r in first] != [r["name"] for r in second]  # other places in the pack
    assert {r["name"]: r["_confidence"] for r in result.rows} == {
        name: 0.5 if name in ("alpha", "bravo") else 1.0 for name in NAMES
    }
    assert {r["kind"] for r in result.rows} == {"tool"}  # the second answers are compared, never kept
    assert {r["_flags"] for r in result.rows} == {"agreement"}
    assert result.stats.calls_agreement == 1
    text = run_text(run_report(result.stats, "function", "f"))
    assert "confidence: median 1.00, 2 of 6 rows below 0.6 (1.0: two packings agree, 0.5: they differ)" in text
    assert "function / function gives no token log-probabilities: kind, typed measured by the agreement" in text
    again = FunctionProvider(differing(set()))
    assert [r["_confidence"] for r in run(again, tmp_path, confidence=True).rows] == [
        r["_confidence"] for r in result.rows
    ]
    assert again.requests == []


def test_an_escalation_from_a_model_without_log_probabilities_goes_by_agreement(tmp_path: Path) -> None:
    strong = FunctionProvider(answer("framework"), model="strong")
    weak = FunctionProvider(differing({"alpha"}), model="weak")
    result = run(weak, tmp_path, escalate=Escalate(strong, below=0.8))
    assert {r["name"] for req in strong.requests for r in records_of(req)} == {"alpha"}
    assert {r["name"]: r["kind"] for r in result.rows} == {n: "framework" if n == "alpha" else "tool" for n in NAMES}


def test_the_dry_run_counts_the_second_packing(tmp_path: Path) -> None:
    once = dry_run(ROWS, TASK, provider=FunctionProvider(answer()), cache_dir=tmp_path, echo=False)
    twice = dry_run(ROWS, TASK, provider=FunctionProvider(answer()), cache_dir=tmp_path, echo=False, confidence=True)
    assert (once.calls, twice.calls) == (1, 2)
    assert twice.prompt_tokens == 2 * once.prompt_tokens
    assert "every row asked twice" in dry_run_text(dry_run_report(twice))


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

    provider = FunctionProvider(refusing, capabilities=LOGPROBS)
    provider.logprobs_refused.add("function")  # as after a call repeated without them, the model having refused
    first = run(provider, tmp_path)
    assert first.stats.confidence.no_logprobs == ["function:function"]
    assert "log-probabilities: function:function gives none" in run_text(run_report(first.stats, "function", "f"))
    assert json.loads((tmp_path / "no-logprobs.json").read_text()) == ["function:function"]
    later = FunctionProvider(answer(), capabilities=LOGPROBS)
    second = run(later, tmp_path, use_cache=False)
    assert later.requests and not any(r.logprobs for r in later.requests)
    assert "_confidence" not in second.rows[0]


def test_an_escalation_on_a_task_without_closed_fields_is_refused(tmp_path: Path) -> None:
    free = Task("Summarise.", ["name"], {"type": "object", "properties": {"summary": {"type": "string"}}})
    provider = FunctionProvider(answer(), capabilities=LOGPROBS)
    with pytest.raises(UserError, match="summary is free text: no row would have one"):
        enrich(ROWS, free, provider=provider, cache_dir=tmp_path, progress=False, escalate=Escalate("strong"))
    assert provider.requests == []


def test_a_frame_gets_the_confidence_columns(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    provider = FunctionProvider(answer(), capabilities=LOGPROBS)
    result = enrich(pandas.DataFrame(ROWS), TASK, provider=provider, cache_dir=tmp_path, progress=False, echo=False)
    assert list(result.frame.columns) == ["name", "group", "kind", "typed", "summary", "_confidence", "_flags"]
    assert list(result.frame["_confidence"]) == pytest.approx([SURE[n] for n in NAMES])
