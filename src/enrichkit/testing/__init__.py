"""Test doubles: a local Gemini REST server with scripted faults, and a provider a function answers.

``GeminiStub`` speaks the Gemini REST API; point the real google-genai client at it
(``HttpOptions(base_url=stub.url)`` or enrichkit's ``--base-url``). By default it answers every
``generateContent`` with valid JSON built from the request: the ids from its ``responseJsonSchema``, the
records from the JSON in its prompt. ``script`` and ``rule`` inject faults (bad JSON, missing or
duplicated ids, 429 with RetryInfo, 5xx, hangs, MAX_TOKENS, ...). It can simulate latency and enforce a
requests-per-minute limit, and serves the Batch and Files APIs, each batched request answered like a
live call. ``python -m enrichkit.testing`` runs it in its own process.

    with GeminiStub() as stub:
        stub.script(drop_ids("r3"))           # first call loses r3, later calls are normal
        enrich(rows, task, client=make_client("k", stub.url))
        assert len(stub.calls) == 2

``OpenAIBatchStub`` (chat completions, Files and Batches) and ``AnthropicStub`` (Messages and Message
Batches) do the same for the real ``openai`` and ``anthropic`` SDKs.

``FunctionProvider(fn)`` skips HTTP: ``fn(request)`` writes each reply (see ``enrichkit.testing.function``).
"""

from enrichkit.testing.anthropic import AnthropicStub
from enrichkit.testing.batch import BatchFiles, StubJob
from enrichkit.testing.call import Call
from enrichkit.testing.faults import (
    Fault,
    Items,
    Outcome,
    Target,
    add_unknown_id,
    answer_items,
    blocked,
    drop_ids,
    duplicate_id,
    error_body,
    fenced,
    hang,
    http_error,
    response,
    set_field,
    shuffled,
    swap_answers,
    truncated,
    with_items,
    with_text,
)
from enrichkit.testing.function import Answer, FunctionProvider, ids_of, records_of
from enrichkit.testing.openai_batches import OpenAIBatchStub, json_validate_failed
from enrichkit.testing.server import GeminiStub
from enrichkit.testing.wire import Asked

__all__ = [
    "Answer",
    "AnthropicStub",
    "Asked",
    "BatchFiles",
    "Call",
    "Fault",
    "FunctionProvider",
    "GeminiStub",
    "Items",
    "OpenAIBatchStub",
    "Outcome",
    "StubJob",
    "Target",
    "add_unknown_id",
    "answer_items",
    "blocked",
    "drop_ids",
    "duplicate_id",
    "error_body",
    "fenced",
    "hang",
    "http_error",
    "ids_of",
    "json_validate_failed",
    "records_of",
    "response",
    "set_field",
    "shuffled",
    "swap_answers",
    "truncated",
    "with_items",
    "with_text",
]
