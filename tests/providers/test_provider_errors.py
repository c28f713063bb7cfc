"""Every error rule of the providers, through the real SDKs against the local stubs: which kind each
failure becomes, that the provider's own words reach the user, and that no key ever does."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from google import genai
from google.genai import errors, types

from enrichkit.errors import (
    FatalProviderError,
    PromptTooLong,
    ProviderError,
    RateLimited,
    RequestRejected,
    TransientError,
    Unreachable,
    UserError,
)
from enrichkit.providers.base import Capabilities, Provider, Reply, Request
from enrichkit.providers.chat import to_reply
from enrichkit.providers.gemini import GeminiProvider, make_client
from enrichkit.providers.openai import openai_provider
from enrichkit.providers.redact import redact
from enrichkit.testing import Fault, GeminiStub, OpenAIStub, Wire, hang, http_error, json_validate_failed
from enrichkit.testing.gemini import response
from enrichkit.testing.openai import completion, error_body
from helpers import ask as sent

SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
REQUEST = Request("Label the record.", "Record:\n\n{}", SCHEMA, 256)
GOOGLE_KEY = "AIza" + "Sy" + "x" * 33  # made here: nothing committed looks like a real key
OPENAI_KEY = "sk-proj-" + "y" * 24


def google_error(status: int, name: str, message: str, *details: dict[str, Any]) -> Fault:
    """A Gemini error answer with structured ``details`` (RetryInfo, QuotaFailure, ErrorInfo)."""
    body = {"error": {"code": status, "message": message, "status": name, "details": list(details)}}
    return lambda call: Wire(status, body)


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota_failure(quota_id: str) -> dict[str, Any]:
    violation = {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests", "quotaId": quota_id}
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}


def error_info(reason: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}


def ask(provider: Provider, request: Request = REQUEST) -> Reply:
    return sent(provider, request)


def failure(provider: Provider, request: Request = REQUEST) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        ask(provider, request)
    return info.value


def shown(exc: BaseException) -> str:
    """Everything ``-v`` prints: the error, its message and the chain of causes."""
    return "".join(traceback.format_exception(exc))


@pytest.fixture
def gemini(stub: GeminiStub) -> GeminiProvider:
    return GeminiProvider(make_client("test-key", stub.url), "gemini-2.5-flash")


@pytest.fixture
def chat() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


# -- Gemini ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind", "text"),
    [
        (
            google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            FatalProviderError,
            "Gemini refused the API key (401 UNAUTHENTICATED: Request had invalid authentication credentials.)",
        ),
        (
            google_error(403, "PERMISSION_DENIED", "Permission denied on resource project p."),
            FatalProviderError,
            "refused the API key (403 PERMISSION_DENIED: Permission denied on resource project p.)",
        ),
        (
            google_error(400, "INVALID_ARGUMENT", "Invalid credentials.", error_info("API_KEY_INVALID")),
            FatalProviderError,
            "refused the API key (400 INVALID_ARGUMENT: Invalid credentials.)",
        ),
        (
            google_error(404, "NOT_FOUND", "models/gemini-2.5-flash is not found for API version v1beta."),
            FatalProviderError,
            "does not know model 'gemini-2.5-flash' (404 NOT_FOUND: models/gemini-2.5-flash is not found",
        ),
        (
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota.\n* Quota exceeded for metric: generate_content_free_tier_requests",
                quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
                retry_info("30s"),
            ),
            FatalProviderError,
            "quota exhausted: GenerateRequestsPerDayPerProjectPerModel-FreeTier "
            "(429 RESOURCE_EXHAUSTED: You exceeded your current quota.)",
        ),
        (
            google_error(
                400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of tokens"
            ),
            PromptTooLong,
            "prompt too long for gemini-2.5-flash (400 INVALID_ARGUMENT: The input token count",
        ),
        (
            google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
            RequestRejected,
            "Gemini rejected the request (400 INVALID_ARGUMENT: Request contains an invalid argument.)",
        ),
        (
            google_error(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
            RequestRejected,
            "(400 FAILED_PRECONDITION: User location is not supported for the API use.)",
        ),
        (google_error(408, "DEADLINE_EXCEEDED", "Request timed out."), TransientError, "(408 DEADLINE_EXCEEDED"),
        (google_error(409, "ABORTED", "Aborted."), TransientError, "Gemini error (409 ABORTED: Aborted.)"),
        (
            google_error(500, "INTERNAL", "An internal error has occurred."),
            TransientError,
            "(500 INTERNAL: An internal",
        ),
        (google_error(503, "UNAVAILABLE", "The model is overloaded."), TransientError, "The model is overloaded."),
    ],
)
def test_gemini_error_answers_map_by_status_and_details(
    stub: GeminiStub, gemini: GeminiProvider, fault: Fault, kind: type[ProviderError], text: str
) -> None:
    stub.script(fault)
    problem = failure(gemini)
    assert type(problem) is kind and text in str(problem)
    assert isinstance(problem.__cause__, errors.APIError)  # kept for -v tracebacks


@pytest.mark.parametrize(
    ("fault", "after"),
    [
        (google_error(429, "RESOURCE_EXHAUSTED", "Resource exhausted.", retry_info("1.5s")), 1.5),
        (
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota.",
                quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                retry_info("7s"),
            ),
            7.0,
        ),
        (
            lambda call: Wire(429, {"error": {"code": 429, "message": "slow down"}}, {"Retry-After": "3"}),
            3.0,
        ),
        (google_error(429, "RESOURCE_EXHAUSTED", "Resource exhausted."), None),
    ],
)
def test_a_gemini_rate_limit_carries_the_servers_delay(
    stub: GeminiStub, gemini: GeminiProvider, fault: Fault, after: float | None
) -> None:
    stub.script(fault)
    problem = failure(gemini)
    assert isinstance(problem, RateLimited) and problem.retry_after == after
    assert "Gemini rate limited (429" in str(problem)


def test_only_the_first_line_of_a_message_is_shown_and_at_most_200_characters(
    stub: GeminiStub, gemini: GeminiProvider
) -> None:
    stub.script(google_error(400, "INVALID_ARGUMENT", "A" * 300 + "\nsecond line"))
    problem = failure(gemini)
    assert "A" * 200 in str(problem) and "A" * 201 not in str(problem) and "second line" not in str(problem)


def test_an_unreachable_gemini_is_unreachable_with_the_connect_error_as_cause() -> None:
    problem = failure(GeminiProvider(make_client("k", "http://127.0.0.1:9"), "gemini-2.5-flash"))
    assert isinstance(problem, Unreachable) and "cannot connect to Gemini at http://127.0.0.1:9/" in str(problem)
    assert isinstance(problem.__cause__, httpx2.ConnectError)


def test_a_base_url_without_a_scheme_is_refused_before_any_call() -> None:
    with pytest.raises(UserError, match="the base URL 'localhost:8089' needs http:// or https://"):
        make_client("k", "localhost:8089")
    options = types.HttpOptions(base_url="localhost:8089", api_version="v1beta")
    problem = failure(GeminiProvider(genai.Client(api_key="k", http_options=options), "gemini-2.5-flash"))
    assert type(problem) is FatalProviderError  # a caller's own client: refused at the first call
    assert "8089/v1beta/models/gemini-2.5-flash:generateContent" in str(problem)
    assert "needs http:// or https://" in str(problem)


def test_a_malformed_gemini_answer_may_pass(stub: GeminiStub, gemini: GeminiProvider) -> None:
    stub.script(lambda call: Wire(200, "<html>not json</html>"))
    problem = failure(gemini)
    assert type(problem) is TransientError and "Gemini sent a malformed response" in str(problem)
    stub.script(lambda call: Wire(200, ["not", "an", "object"]))
    problem = failure(gemini)
    assert type(problem) is TransientError and "the body is a list, not an object" in str(problem)


def test_a_gemini_answer_is_read_from_its_body_as_the_sdk_would_read_it(
    stub: GeminiStub, gemini: GeminiProvider
) -> None:
    body = response(None, "MAX_TOKENS", prompt_tokens=7)
    body["candidates"][0]["content"]["parts"] = [
        {"text": "thinking it over", "thought": True},
        {"text": '{"label": '},
        {"inlineData": {"mimeType": "image/png", "data": ""}},
        {"text": '"x"}'},
    ]
    body["candidates"][0]["aNewField"] = {"nested": [1, 2]}  # fields the API adds later are left alone
    body["usageMetadata"] |= {"candidatesTokenCount": 5, "thoughtsTokenCount": 3, "cachedContentTokenCount": 2}
    stub.script(lambda call: Wire(body=body))
    reply = ask(gemini)
    texts = [part for part in body["candidates"][0]["content"]["parts"] if "text" in part]
    by_sdk = types.GenerateContentResponse.model_validate({"candidates": [{"content": {"parts": texts}}]})
    assert reply.text == '{"label": "x"}' == by_sdk.text
    assert (reply.finish, reply.detail) == ("max_tokens", "MAX_TOKENS")
    assert (reply.usage.prompt_tokens, reply.usage.output_tokens, reply.usage.cached_tokens) == (7, 8, 2)
    stub.script(lambda call: Wire(body={"promptFeedback": {"blockReason": "OTHER"}, "usageMetadata": None}))
    blocked = ask(gemini)
    assert (blocked.text, blocked.finish, blocked.detail) == (None, "blocked", "prompt blocked: OTHER")
    stub.script(lambda call: Wire(body={"candidates": [{"finishReason": "STOP"}]}))
    assert ask(gemini).text is None


@pytest.mark.slow
def test_the_request_deadline_drives_the_sdk_not_the_default_one(stub: GeminiStub) -> None:
    provider = GeminiProvider(make_client("k", stub.url), "gemini-2.5-flash", capabilities=Capabilities(timeout=1.0))
    stub.script(hang(3))
    reply = ask(provider, Request(REQUEST.system, REQUEST.prompt, SCHEMA, 256, timeout=10))
    assert reply.finish == "stop" and reply.text
    [call] = stub.generate_calls
    assert {k.lower(): v for k, v in call.headers.items()}["x-server-timeout"] == "10"
    config = provider.config(Request("s", "p", SCHEMA, 256, timeout=200))
    assert config.http_options is not None and config.http_options.timeout == 200_000
    assert provider.config(REQUEST).http_options is None


def test_a_call_past_its_deadline_may_pass(stub: GeminiStub, gemini: GeminiProvider) -> None:
    stub.script(hang(3))
    problem = failure(gemini, Request(REQUEST.system, REQUEST.prompt, SCHEMA, 256, timeout=0.5))
    assert type(problem) is TransientError and "Gemini did not answer in time (ReadTimeout)" in str(problem)


def test_count_tokens_raises_only_what_stops_the_run(stub: GeminiStub, gemini: GeminiProvider) -> None:
    stub.refuse(401, "API key not valid. Please pass a valid API key.")
    with pytest.raises(FatalProviderError, match="refused the API key"):
        asyncio.run(gemini.count_tokens(REQUEST))
    stub.refuse(400, "Request contains an invalid argument.")
    assert asyncio.run(gemini.count_tokens(REQUEST)) is None


# -- Gemini batch ----------------------------------------------------------------------------------


def test_batch_calls_map_errors_the_same_way(stub: GeminiStub, gemini: GeminiProvider) -> None:
    batches = gemini.batches()
    with pytest.raises(FatalProviderError, match=r"no such batch job \(404: batches/missing not found\)") as info:
        asyncio.run(batches.status("batches/missing"))
    assert isinstance(info.value.__cause__, errors.APIError)
    stub.refuse(400, "Request contains an invalid argument.")
    with pytest.raises(RequestRejected, match="Gemini rejected the request"):
        asyncio.run(batches.submit([("k1", REQUEST)], "refused"))


def test_a_failed_batch_request_says_why_without_the_key(stub: GeminiStub, gemini: GeminiProvider) -> None:
    stub.script(google_error(403, "PERMISSION_DENIED", f"Consumer 'api_key:{GOOGLE_KEY}' has been suspended.\nmore"))
    batches = gemini.batches()
    name = asyncio.run(batches.submit([("k1", REQUEST)], "suspended"))
    stub.advance(name)
    assert asyncio.run(batches.results(name)) == {
        "k1": "batch request failed: Consumer 'api_key:[redacted]' has been suspended."
    }


def test_a_batch_file_line_is_the_live_request_body(
    stub: GeminiStub, gemini: GeminiProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    flex = GeminiProvider(make_client("k", stub.url), "gemini-3.1-flash-lite").on_tier("flex")
    for provider in (gemini, flex):
        ask(provider, Request(REQUEST.system, REQUEST.prompt, SCHEMA, 256, timeout=30))
        live = stub.generate_calls[-1].body
        monkeypatch.setattr("enrichkit.providers.gemini.INLINE_LIMIT", 0)  # a file job
        name = asyncio.run(provider.batches().submit([("k1", REQUEST)], "file-job"))
        [(key, line)] = stub.jobs[name].requests
        assert stub.jobs[name].source == "file" and key == "k1"
        assert line["generationConfig"] == live["generationConfig"]
        assert line["systemInstruction"] == live["systemInstruction"]
        assert line == live  # contents and serviceTier too
        monkeypatch.setattr("enrichkit.providers.gemini.INLINE_LIMIT", 200)
        inline = asyncio.run(provider.batches().submit([("k2", REQUEST)], "inline-job"))
        [(_, request)] = stub.jobs[inline].requests
        assert request["generationConfig"] == live["generationConfig"]
    assert stub.generate_calls[-1].body["serviceTier"] == "flex"


# -- secrets ---------------------------------------------------------------------------------------


def test_a_key_named_in_a_google_message_never_reaches_the_error(stub: GeminiStub, gemini: GeminiProvider) -> None:
    message = f"Permission denied: Consumer 'api_key:{GOOGLE_KEY}' has been suspended."
    stub.script(google_error(403, "PERMISSION_DENIED", message, error_info("CONSUMER_SUSPENDED")))
    problem = failure(gemini)
    assert isinstance(problem, FatalProviderError) and "has been suspended" in str(problem)
    assert GOOGLE_KEY not in str(problem) and GOOGLE_KEY not in shown(problem)
    assert "Consumer 'api_key:[redacted]'" in str(problem)


def test_the_configured_keys_are_redacted_wherever_they_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "my-configured-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")  # too short to blank out of every word
    text = f"bad my-configured-secret, {OPENAI_KEY} and sk-ant-api03-{'z' * 30}; {GOOGLE_KEY}! task-a1b2c3d4e5f6g7h8i9"
    assert redact(text) == "bad [redacted], [redacted] and [redacted]; [redacted]! task-a1b2c3d4e5f6g7h8i9"


def test_an_openai_key_echoed_by_the_endpoint_never_reaches_the_error(
    chat: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "a-configured-openai-key")
    chat.script(http_error(401, f"Incorrect API key provided: {OPENAI_KEY}.", code="invalid_api_key"))
    problem = failure(openai_provider("stub-model", base_url=chat.url))
    assert (
        str(problem) == "127.0.0.1 refused the API key (401 invalid_api_key: Incorrect API key provided: [redacted].)"
    )
    assert OPENAI_KEY not in shown(problem)


# -- OpenAI-compatible endpoints -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind", "text"),
    [
        (http_error(401, "Invalid API Key", code="invalid_api_key"), FatalProviderError, "refused the API key (401"),
        (http_error(403, "Project does not have access"), FatalProviderError, "refused the API key (403 stub_error"),
        (
            http_error(404, "The model `stub-model` does not exist", code="model_not_found"),
            FatalProviderError,
            "does not know model 'stub-model' (404 model_not_found: The model `stub-model` does not exist)",
        ),
        (
            http_error(429, "You exceeded your current quota.", code="insufficient_quota"),
            FatalProviderError,
            "quota exhausted: insufficient_quota (429 insufficient_quota: You exceeded your current quota.)",
        ),
        (
            http_error(400, "Please reduce the length of the messages.", code="context_length_exceeded"),
            PromptTooLong,
            "prompt too long for stub-model (400 context_length_exceeded",
        ),
        (
            http_error(400, "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens."),
            PromptTooLong,
            "maximum context length is 8192 tokens",
        ),
        (
            http_error(413, "Request too large for model on tokens per minute (TPM)", code="rate_limit_exceeded"),
            PromptTooLong,
            "(413 rate_limit_exceeded: Request too large",
        ),
        (
            json_validate_failed(),
            RequestRejected,
            "127.0.0.1 refused the model's answer (400 json_validate_failed: Failed to validate JSON)",
        ),
        (
            json_validate_failed(
                "max completion tokens reached before generating a valid document", failed_generation='{"items": ['
            ),
            RequestRejected,
            "json_validate_failed: max completion tokens reached before generating a valid document",
        ),
        (http_error(422, "Unprocessable entity"), RequestRejected, "(422 stub_error: Unprocessable entity)"),
        (http_error(408, "Request timeout"), TransientError, "127.0.0.1 error (408"),
        (http_error(409, "Conflict"), TransientError, "(409 stub_error: Conflict)"),
        (http_error(500, "The server had an error"), TransientError, "(500 stub_error: The server had an error)"),
        (http_error(503, "Service unavailable"), TransientError, "Service unavailable"),
        (
            lambda call: Wire(502, "<html>Bad gateway</html>\n<body/>"),
            TransientError,
            "127.0.0.1 error (502: <html>Bad gateway</html>)",
        ),
    ],
)
def test_openai_error_answers_map_by_status_and_code(
    chat: OpenAIStub, fault: Any, kind: type[ProviderError], text: str
) -> None:
    chat.script(fault)
    problem = failure(openai_provider("stub-model", base_url=chat.url))
    assert type(problem) is kind and text in str(problem)
    assert isinstance(problem.__cause__, openai.APIStatusError)


def test_an_openai_rate_limit_carries_retry_after(chat: OpenAIStub) -> None:
    limited = error_body(429, "Rate limit reached for requests", "rate_limit_exceeded")
    chat.script(lambda call: Wire(429, limited, {"retry-after": "2"}))
    problem = failure(openai_provider("stub-model", base_url=chat.url))
    assert isinstance(problem, RateLimited) and problem.retry_after == 2.0
    assert "rate limited (429 rate_limit_exceeded: Rate limit reached for requests)" in str(problem)


def test_openai_connection_failures() -> None:
    dead = failure(openai_provider("m", base_url="http://127.0.0.1:9/v1"))
    assert isinstance(dead, Unreachable) and "cannot connect to 127.0.0.1 at http://127.0.0.1:9/v1/" in str(dead)
    assert isinstance(dead.__cause__, openai.APIConnectionError)
    schemeless = failure(openai_provider("m", base_url="localhost:8000/v1"))
    assert type(schemeless) is FatalProviderError
    assert "localhost:8000/v1" in str(schemeless) and "needs http:// or https://" in str(schemeless)


def test_a_malformed_openai_answer_may_pass(chat: OpenAIStub) -> None:
    chat.script(lambda call: Wire(200, "not json"))
    problem = failure(openai_provider("m", base_url=chat.url))
    assert type(problem) is TransientError and "sent a malformed response" in str(problem)
    chat.script(lambda call: Wire(200, ["not", "an", "object"]))
    problem = failure(openai_provider("m", base_url=chat.url))
    assert type(problem) is TransientError and "the body is a list, not an object" in str(problem)


@pytest.mark.slow
def test_each_openai_call_carries_its_own_deadline(chat: OpenAIStub) -> None:
    provider = openai_provider("m", base_url=chat.url)
    assert provider.client.timeout is None  # no cap of the client's own
    chat.script(hang(2))
    assert ask(provider, Request(REQUEST.system, REQUEST.prompt, SCHEMA, 256, timeout=10)).finish == "stop"
    chat.script(hang(3))
    late = failure(openai_provider("m", base_url=chat.url), Request("s", REQUEST.prompt, SCHEMA, 256, timeout=0.5))
    assert type(late) is TransientError and "did not answer in time" in str(late)


# -- the chat-completions reply ----------------------------------------------------------------------


def test_one_reply_parser_reads_finish_usage_and_cached_tokens(chat: OpenAIStub) -> None:
    body = completion('{"items": [{"id": "r1", "label": "a"}]}', finish="content_filter", prompt_tokens=100)
    body["usage"]["prompt_tokens_details"] = {"cached_tokens": 64}
    chat.script(lambda call: Wire(body=body))
    array = {"type": "array", "items": SCHEMA}
    reply = ask(openai_provider("m", base_url=chat.url), Request("s", "p", array, 256))
    assert (reply.finish, reply.detail, reply.usage.cached_tokens, reply.usage.prompt_tokens) == (
        "blocked",
        "content_filter",
        64,
        100,
    )
    assert json.loads(reply.text or "") == [{"id": "r1", "label": "a"}]  # unwrapped
    assert chat.calls[0].body["response_format"]["json_schema"]["schema"]["required"] == ["items"]  # asked wrapped
    assert to_reply(completion("x", finish="tool_calls")).finish == "other"
    assert to_reply(completion("x", finish="length")).finish == "max_tokens"
    assert to_reply({"choices": "garbage", "usage": None}).text is None
