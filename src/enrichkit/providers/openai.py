"""Any OpenAI-compatible chat endpoint (OpenAI, Groq, Ollama, vLLM, llama.cpp server) via the ``openai``
SDK: live calls, and batch jobs through its ``files`` and ``batches``.

A job is one JSONL file of chat.completions requests uploaded with ``purpose="batch"``: each line's
``body`` is exactly the live call's (``OpenAIProvider.body``), its ``custom_id`` the request's key
(``joblines.request_id``); the job carries its display name in ``metadata``. Results come from the
output file (answered requests) and the error file (failed or expired ones, their error parsed into
the reason), joined on ``custom_id`` only; ids the job did not hold are left to ``collect``, which
ignores and counts them. ``split`` keeps each job under 50,000 requests and 200 MB.

Token log-probabilities (``Request.logprobs``) are asked with ``logprobs: true`` and ``top_logprobs``, live
and in job lines alike, and read from ``choices[0].logprobs.content``; never of the reasoning models (o1, o3,
o4, gpt-5),
which give none. A model that refuses them (a 400 about log-probabilities) is asked again without, and
remembered in ``logprobs_refused`` (shared with the providers ``with_model`` derives).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx2
import orjson
import pydantic

from enrichkit.errors import ProviderError, UserError
from enrichkit.providers import keys
from enrichkit.providers.base import ALTERNATIVES, Capabilities, JobState, JobStatus, Media, Reply, Request
from enrichkit.providers.chat import error_of, response_format, to_reply, wraps
from enrichkit.providers.classify import LogprobsRefused, malformed, retry_after, transport
from enrichkit.providers.joblines import Keyed, fit, key_of, request_failed, request_id, spooled
from enrichkit.providers.logprobs import AsksLogprobs
from enrichkit.providers.media_cost import OPENAI
from enrichkit.providers.redact import redact_exception

DEFAULT_MODEL = "gpt-4.1-mini"
_REASONING = re.compile(r"^(?:.*/)?(?:o\d+|gpt-5)(?:$|[-.])", re.I)
"""OpenAI's reasoning models (o1, o3-mini, o4-mini, gpt-5, gpt-5.1-mini ...; an ``openai/`` prefix too): no
log-probabilities."""


def gives_logprobs(model: str) -> bool:
    """Whether ``model`` may return token log-probabilities, as far as its name tells."""
    return _REASONING.match(model) is None


def _sdk() -> Any:
    try:
        import openai
    except ImportError:
        raise UserError("the openai provider needs the openai SDK: pip install 'enrichkit[openai]'") from None
    return openai


class OpenAIProvider(AsksLogprobs):
    name = "openai"

    def __init__(
        self,
        client: Any,
        model: str,
        *,
        temperature: float = 0.0,
        owns_client: bool = False,
        logprobs_refused: set[str] | None = None,
    ) -> None:
        self.client = client
        self.owns_client = owns_client
        self.model = model
        self.temperature = temperature
        self.logprobs_refused = set() if logprobs_refused is None else logprobs_refused
        """The models that refused token log-probabilities while this provider (or one ``with_model``
        derived from it) lived; a model added before a call is not asked for them."""
        self.capabilities = Capabilities(
            id_style="enum",
            max_pack_size=50,
            concurrency=8,
            timeout=120.0,
            logprobs=gives_logprobs(model) and model not in self.logprobs_refused,
            media=OPENAI,
        )
        _sdk()  # a clear error now if the SDK is missing

    def settings(self) -> dict[str, Any]:
        return {"model": self.model, "temperature": self.temperature, "base_url": str(self.client.base_url)}

    def body(self, request: Request) -> dict[str, Any]:
        """The chat.completions body of ``request``: the live call's, and each line of a batch file (with
        log-probabilities: ``ALTERNATIVES`` most likely tokens at each step, for ``Token.top``)."""
        body = {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": request.max_output_tokens,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": content(request)}],
            "response_format": response_format(request.schema),
        }
        return {**body, "logprobs": True, "top_logprobs": ALTERNATIVES} if self.asks_logprobs(request) else body

    async def _generate(self, request: Request) -> Reply:
        """The call; its body read as JSON straight from the response (``with_raw_response``), not through the
        SDK's models: with log-probabilities asked, those would build an object per token and alternative."""
        deadline = {} if request.timeout is None else {"timeout": request.timeout}
        with mapped_errors(self.model):
            response = await self.client.chat.completions.with_raw_response.create(**self.body(request), **deadline)
            doc = orjson.loads(response.content)
        if not isinstance(doc, dict):
            host = str(self.client.base_url.host or "the endpoint")
            raise malformed(TypeError(f"the body is a {type(doc).__name__}, not an object"), host)
        return to_reply(doc, wrapped=wraps(request.schema))

    async def count_tokens(self, request: Request) -> int | None:
        return None

    def with_model(self, model: str) -> OpenAIProvider:
        """The same endpoint and client on ``model`` (a fallback); the client stays this provider's to close."""
        return OpenAIProvider(self.client, model, temperature=self.temperature, logprobs_refused=self.logprobs_refused)

    def on_tier(self, tier: str) -> OpenAIProvider:
        raise UserError(f"the openai provider has no service tier {tier!r}")

    def batches(self) -> OpenAIBatches:
        """The endpoint's Files + Batches API (OpenAI, Groq; a server without one answers 404 at submit)."""

        return OpenAIBatches(self)

    async def aclose(self) -> None:
        """Close the client if this provider made it (a caller's client stays open)."""
        if self.owns_client:
            await self.client.close()


def content(request: Request) -> str | list[dict[str, Any]]:
    """The user message's content: its text, or its parts where it carries media (an image as an
    ``image_url`` data URL, a PDF as a ``file`` part with its ``file_data``)."""
    if not request.media:
        return request.prompt
    return [_part(p, n) for n, p in enumerate(request.parts())]


def _part(part: str | Media, n: int) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    url = f"data:{part.mime};base64,{base64.b64encode(part.data).decode()}"
    if part.mime == "application/pdf":
        return {"type": "file", "file": {"filename": f"document-{n}.pdf", "file_data": url}}
    return {"type": "image_url", "image_url": {"url": url}}


def map_error(exc: BaseException, model: str) -> ProviderError:
    """enrichkit's kind of error for what an openai SDK call raised (the rules: ``classify.by_status``),
    named after the endpoint's host."""
    openai = _sdk()
    request = getattr(exc, "request", None)
    host = request.url.host if isinstance(request, httpx2.Request) else "the endpoint"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, Mapping) else {"message": str(exc.body or exc.message)}
        return error_of(exc.status_code, body, host, model, retry_after(exc.response.headers))
    if isinstance(exc, openai.APIResponseValidationError | pydantic.ValidationError | json.JSONDecodeError):
        return malformed(exc, host)
    return transport(exc.__cause__ or exc, host, str(request.url) if isinstance(request, httpx2.Request) else "")


@contextlib.contextmanager
def mapped_errors(model: str) -> Iterator[None]:
    """Raise what an openai SDK call raises inside as ``map_error`` says, from the original (redacted)."""
    openai = _sdk()
    try:
        yield
    except (openai.APIError, pydantic.ValidationError, json.JSONDecodeError) as exc:
        raise map_error(exc, model) from redact_exception(exc)


def openai_provider(model: str | None = None, base_url: str | None = None) -> OpenAIProvider:
    """A provider on ``base_url`` (default OpenAI) with the key from OPENAI_API_KEY (optional for local servers)."""
    openai = _sdk()
    key = keys.from_env(keys.OPENAI) or ""
    if not key and base_url is None:
        raise UserError(f"no OpenAI API key: set {keys.OPENAI} (or pass --base-url for a local server)")
    # No timeout of the client's own: each call carries its request's deadline.
    client = openai.AsyncOpenAI(api_key=key or "none", base_url=base_url, max_retries=0, timeout=None)
    return OpenAIProvider(client, model or DEFAULT_MODEL, owns_client=True)


T = TypeVar("T")

ENDPOINT = "/v1/chat/completions"

MAX_REQUESTS = 50_000

MAX_BYTES = 200 * 1000 * 1000

_STATES: dict[str, JobState] = {
    "validating": "pending",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "running",
    "completed": "succeeded",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}


class OpenAIBatches:
    """Submit, watch, collect and cancel batch jobs for one OpenAI-compatible provider (same model)."""

    def __init__(self, provider: OpenAIProvider) -> None:
        self.provider = provider
        self.client = provider.client
        self.host = str(provider.client.base_url.host or "the endpoint")

    @property
    def model(self) -> str:
        return self.provider.model

    def split(self, requests: Keyed) -> list[Keyed]:
        return fit(requests, lambda k, r: len(self._line(k, r).encode()) + 1, MAX_REQUESTS, MAX_BYTES)

    async def submit(self, requests: Sequence[tuple[str, Request]], display_name: str) -> str:
        """Upload ``requests`` as one JSONL file and create ONE batch on it; the batch's id."""
        with spooled(self._line(key, request) for key, request in requests) as path, path.open("rb") as data:
            upload = (f"{display_name}.jsonl", data, "application/jsonl")  # sent from the file, piece by piece
            file = await self._call(self.client.files.create(file=upload, purpose="batch"))
        batch = await self._call(
            self.client.batches.create(
                input_file_id=file.id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={"display_name": display_name},
            )
        )
        return str(batch.id)

    async def find(self, display_name: str) -> str | None:
        """The batch created under ``display_name`` (its ``metadata``), newest first."""
        with mapped_errors(self.model):
            async for batch in self.client.batches.list(limit=100):
                if (batch.metadata or {}).get("display_name") == display_name:
                    return str(batch.id)
        return None

    async def status(self, name: str) -> JobStatus:
        batch = await self._call(self.client.batches.retrieve(name))
        shown = (batch.metadata or {}).get("display_name", "")
        counts = batch.request_counts
        if counts is None:
            return JobStatus(str(batch.id), _STATES.get(batch.status, "unknown"), shown)
        state = _STATES.get(batch.status, "unknown")
        return JobStatus(str(batch.id), state, shown, counts.total, counts.completed, counts.failed)

    async def results(self, name: str) -> dict[str, Reply | str]:
        """Per request key: the reply, or why that request failed (from the output and error files)."""
        batch = await self._call(self.client.batches.retrieve(name))
        out: dict[str, Reply | str] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._call(self.client.files.content(file_id))
            for line in content.text.splitlines():
                if line.strip() and (found := self._result(line)) is not None:
                    out[found[0]] = found[1]
        return out

    async def cancel(self, name: str) -> None:
        await self._call(self.client.batches.cancel(name))

    def _line(self, key: str, request: Request) -> str:
        """One JSONL input line: the live call's body under the request's id."""
        line = {"custom_id": request_id(key, request), "method": "POST", "url": ENDPOINT}
        return json.dumps({**line, "body": self.provider.body(request)}, ensure_ascii=False)

    def _result(self, line: str) -> tuple[str, Reply | str] | None:
        """The key and outcome of one output or error line; None for a line without a usable id."""
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            return None
        custom_id = doc.get("custom_id") if isinstance(doc, dict) else None
        if not isinstance(custom_id, str):
            return None
        key, wrapped = key_of(custom_id)
        response, error = doc.get("response"), doc.get("error")
        if isinstance(response, Mapping):
            return key, self._answer(response, wrapped)
        if isinstance(error, Mapping):  # never answered, e.g. ``batch_expired``
            return key, request_failed(f"{error.get('code') or 'error'}: {error.get('message') or ''}")
        return key, request_failed("")

    def _answer(self, response: Mapping[str, Any], wrapped: bool) -> Reply | str:
        """A line's ``response``: a chat completion, or an error answer (e.g. Groq's json_validate_failed)."""
        status = response.get("status_code")
        body = response.get("body")
        if not isinstance(body, Mapping):
            return request_failed(f"{status}: no body")
        try:
            if status == 200:
                return to_reply(body, wrapped=wrapped, provider=self.host)
            error = body.get("error")
            said = error if isinstance(error, Mapping) else {"message": json.dumps(body)}
            code = status if isinstance(status, int) else 500
            failure = error_of(code, said, self.host, self.model)
            if isinstance(failure, LogprobsRefused):
                self.provider.refused_logprobs()
            return request_failed(str(failure))
        except ProviderError as exc:
            return request_failed(str(exc))

    async def _call(self, call: Awaitable[T]) -> T:
        """Await an SDK call, mapping its errors to enrichkit's provider errors."""
        with mapped_errors(self.model):
            return await call
