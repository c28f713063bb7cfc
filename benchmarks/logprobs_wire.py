"""What reading token log-probabilities costs one pack of 20 answers on each wire (µs, the least of 7
timeit repeats), and how much bigger the response body is.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/logprobs_wire.py

The pack and its answer are ``throughput.py``'s synthetic rows and the stubs' default answer; each body is
the one the stub sends (without ``logprobsResult`` / ``logprobs.content``; with them, the chosen tokens
only, as before issue 32's second round: "+lp"; and with ``ALTERNATIVES`` candidates a step, as the
providers now ask and the real APIs answer, the stub's made up to that many: "+top"). "read" is what the
provider does with a response: its parse of the body and its reply
(enrichkit's own part: the tokens read, checked against the text, cut to the unwrapped array; each token's
alternatives are read only when the confidence looks at them, so this part no longer reads them).
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from enrichkit.engine.codec import PackCodec
from enrichkit.providers import chat, gemini
from enrichkit.providers.base import ALTERNATIVES, Reply, Request
from enrichkit.rows.work import Work
from enrichkit.testing.faults import Answer, Asked, tokens_of
from enrichkit.testing.gemini import logprobs_result, response
from enrichkit.testing.logprobs import Probs, Scripted
from enrichkit.testing.openai import completion, logprobs_content
from throughput import TASK, iter_synthetic_rows


def least_us(step: Callable[[], Any]) -> float:
    return min(timeit.repeat(step, number=200, repeat=7)) / 200 * 1e6


def main() -> None:
    codec = PackCodec(TASK, affinity=True)
    rows = [{f: row[f] for f in TASK.inputs} for row in iter_synthetic_rows(20)]
    _, request = codec.pack_request([Work(f"k{n}", inputs) for n, inputs in enumerate(rows)])
    print(f"one pack of {len(rows)} rows; µs per read, least of 7 repeats (noisy on a shared machine)")
    print(
        f"{'wire':<8}{'tokens':>7}{'body B':>9}{'+lp':>8}{'+top':>8}{'read µs':>9}{'+lp':>8}{'+top':>8}"
        f"{'of it parse':>12}{'of it ours':>12}"
    )
    for wire in ("gemini", "openai"):
        print(measure(wire, request))


def measure(wire: str, request: Request) -> str:
    """One wire's line: tokens, body bytes and read µs without and with log-probabilities."""
    asked = Asked("m", request.system, request.prompt, request.schema, wrapped=wire == "openai", logprobs=True)
    answer = Answer(asked.answer)
    text = answer.content(asked) or ""
    pairs = tokens_of(answer, asked, Probs()) or []
    plain, with_lp, with_top = _bodies(wire, text, pairs)
    parse, reply = _reader(wire, wrapped=asked.wrapped)
    parsed = parse(with_top)
    assert reply(parsed).tokens is not None and reply(parse(plain)).tokens is None
    before, lp = least_us(lambda: reply(parse(plain))), least_us(lambda: reply(parse(with_lp)))
    top = least_us(lambda: reply(parse(with_top)))
    sdk, ours = least_us(lambda: parse(with_top)), least_us(lambda: reply(parsed))
    sizes = [len(json.dumps(body)) for body in (plain, with_lp, with_top)]
    return (
        f"{wire:<8}{len(pairs):>7}{sizes[0]:>9}{sizes[1]:>8}{sizes[2]:>8}{before:>9.0f}{lp:>8.0f}{top:>8.0f}"
        f"{sdk:>12.0f}{ours:>12.0f}"
    )


def _bodies(wire: str, text: str, pairs: list[Scripted]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The body without log-probabilities, with the chosen tokens', and with ``ALTERNATIVES`` a step."""
    if wire == "gemini":
        plain, with_lp, with_top = response(text), response(text), response(text)
        with_lp["candidates"][0]["logprobsResult"] = logprobs_result(pairs)
        result = logprobs_result(pairs, ALTERNATIVES)
        for step in result["topCandidates"]:
            step["candidates"] += [
                {"token": f"alt{k}", "tokenId": k, "logProbability": -20.0}
                for k in range(ALTERNATIVES - len(step["candidates"]))
            ]
        with_top["candidates"][0]["logprobsResult"] = result
        return plain, with_lp, with_top
    plain, with_lp, with_top = completion(text), completion(text), completion(text)
    with_lp["choices"][0]["logprobs"] = {"content": logprobs_content(pairs), "refusal": None}
    content = logprobs_content(pairs, ALTERNATIVES)
    for entry in content:
        entry["top_logprobs"] += [
            {"token": f"alt{k}", "logprob": -20.0, "bytes": list(f"alt{k}".encode())}
            for k in range(ALTERNATIVES - len(entry["top_logprobs"]))
        ]
    with_top["choices"][0]["logprobs"] = {"content": content, "refusal": None}
    return plain, with_lp, with_top


def _reader(wire: str, *, wrapped: bool) -> tuple[Callable[[dict[str, Any]], Any], Callable[[Any], Reply]]:
    """The provider's parse of a body as it has the JSON text (its dump here counted too; Gemini's leaves the
    alternatives out, ``gemini.loads``; OpenAI's is orjson's), and its reply from it."""
    if wire == "gemini":
        return lambda body: gemini.loads(orjson.dumps(body)), lambda parsed: gemini.wire_reply(*parsed)
    return lambda body: orjson.loads(orjson.dumps(body)), lambda doc: chat.to_reply(doc, wrapped=wrapped)


if __name__ == "__main__":
    main()
