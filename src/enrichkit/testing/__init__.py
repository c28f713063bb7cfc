"""Test doubles: local servers speaking each provider's wire API, a provider a function answers, and one
fault language for them all.

``GeminiStub`` (generateContent, Batch and Files APIs), ``OpenAIStub`` (chat completions, Files and
Batches) and ``AnthropicStub`` (Messages and Message Batches) serve the real SDKs on a local port
(``stub.url``). By default each answers a request with a valid answer built from it (``default_answer``:
the pack ids from its answer schema, the records from its prompt). A fault reads the request (``Asked``)
and returns what to answer instead, an ``Answer``, an ``Error`` (or a ``Wire`` reply for one wire's
own tests), which each stub renders in its own format; ``script`` uses faults for the next requests in
order, ``rule`` for every request after. ``stub.calls`` holds every request as ``Asked``.

    with GeminiStub() as stub:
        stub.script(drop_ids("r3"))           # the first call loses r3, later calls are normal
        enrich(rows, task, client=make_client("k", stub.url))
        assert len(stub.generate_calls) == 2

``FunctionProvider(fn)`` skips HTTP: ``fn(request)`` writes each reply. ``scripted(*faults, rules=...)``
makes such a function from the same faults:

    provider = FunctionProvider(scripted(drop_ids("r3")))

Asked for token log-probabilities, every stub (and ``scripted``) returns them in its wire's shape, each
value written with the probability ``stub.probs`` (a ``Probs``) or a fault's ``with_probs(ids={"r2": 0.3})``
gives it; ``stub.rule(logprobs_refused())`` makes the model refuse them as the real APIs do (a 400).

``python -m enrichkit.testing --api gemini|openai|anthropic`` serves a stub in its own process (by default it
answers only for the models ``prices.json`` prices, as the real APIs refuse a name they do not know).
"""

from enrichkit.providers.function import FunctionProvider, ids_of, records_of, scored
from enrichkit.testing.answers import default_answer
from enrichkit.testing.anthropic import AnthropicStub
from enrichkit.testing.faults import (
    Answer,
    Asked,
    Error,
    Fault,
    Items,
    Outcome,
    ServerLimit,
    Target,
    Wire,
    add_unknown_id,
    blocked,
    drop_ids,
    duplicate_id,
    fenced,
    hang,
    http_error,
    json_validate_failed,
    logprobs_refused,
    quota_exhausted,
    rate_limited,
    set_field,
    shuffled,
    swap_answers,
    truncated,
    with_items,
    with_probs,
    with_text,
)
from enrichkit.testing.gemini import GeminiStub
from enrichkit.testing.logprobs import Probs
from enrichkit.testing.openai import OpenAIStub
from enrichkit.testing.script import Scripted, scripted

__all__ = [
    "Answer",
    "AnthropicStub",
    "Asked",
    "Error",
    "Fault",
    "FunctionProvider",
    "GeminiStub",
    "Items",
    "OpenAIStub",
    "Outcome",
    "Probs",
    "Scripted",
    "ServerLimit",
    "Target",
    "Wire",
    "add_unknown_id",
    "blocked",
    "default_answer",
    "drop_ids",
    "duplicate_id",
    "fenced",
    "hang",
    "http_error",
    "ids_of",
    "json_validate_failed",
    "logprobs_refused",
    "quota_exhausted",
    "rate_limited",
    "records_of",
    "scored",
    "scripted",
    "set_field",
    "shuffled",
    "swap_answers",
    "truncated",
    "with_items",
    "with_probs",
    "with_text",
]
