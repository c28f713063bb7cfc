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

``OpenAIStub`` speaks the OpenAI chat-completions API (``openai_provider(model, stub.url)``), with its
own faults (``enrichkit.testing.openai``); they are re-exported here with a ``chat_`` prefix where a
name would clash with a Gemini fault (``chat_drop_ids``, ``chat_hang``, ...).
"""

from enrichkit.providers.function import Answer, FunctionProvider, ids_of, records_of
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
from enrichkit.testing.gemini import GeminiStub
from enrichkit.testing.openai import Answer as ChatAnswer
from enrichkit.testing.openai import Fault as ChatFault
from enrichkit.testing.openai import (
    OpenAIStub,
    Received,
    json_validate_failed,
    rate_limited,
)
from enrichkit.testing.openai import add_unknown_id as chat_add_unknown_id
from enrichkit.testing.openai import answer_of as chat_answer
from enrichkit.testing.openai import completion as chat_completion
from enrichkit.testing.openai import cut_off as chat_cut_off
from enrichkit.testing.openai import drop_ids as chat_drop_ids
from enrichkit.testing.openai import duplicate_id as chat_duplicate_id
from enrichkit.testing.openai import error as chat_error
from enrichkit.testing.openai import hang as chat_hang
from enrichkit.testing.openai import raw as chat_raw
from enrichkit.testing.openai import set_field as chat_set_field
from enrichkit.testing.openai import swap_answers as chat_swap_answers
from enrichkit.testing.openai import with_items as chat_with_items
from enrichkit.testing.openai_batches import OpenAIBatchStub
from enrichkit.testing.openai_batches import json_validate_failed as batch_json_validate_failed
from enrichkit.testing.wire import Asked

__all__ = [
    "Answer",
    "AnthropicStub",
    "Asked",
    "BatchFiles",
    "Call",
    "ChatAnswer",
    "ChatFault",
    "Fault",
    "FunctionProvider",
    "GeminiStub",
    "Items",
    "OpenAIBatchStub",
    "OpenAIStub",
    "Outcome",
    "Received",
    "StubJob",
    "Target",
    "add_unknown_id",
    "answer_items",
    "batch_json_validate_failed",
    "blocked",
    "chat_add_unknown_id",
    "chat_answer",
    "chat_completion",
    "chat_cut_off",
    "chat_drop_ids",
    "chat_duplicate_id",
    "chat_error",
    "chat_hang",
    "chat_raw",
    "chat_set_field",
    "chat_swap_answers",
    "chat_with_items",
    "drop_ids",
    "duplicate_id",
    "error_body",
    "fenced",
    "hang",
    "http_error",
    "ids_of",
    "json_validate_failed",
    "rate_limited",
    "records_of",
    "response",
    "set_field",
    "shuffled",
    "swap_answers",
    "truncated",
    "with_items",
    "with_text",
]
