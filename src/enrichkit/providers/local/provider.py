"""A local model in-process: llama.cpp through xllamacpp, answers constrained by a JSON-schema grammar."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from enrichkit.errors import FatalProviderError, TransientError, UserError
from enrichkit.providers.base import Capabilities, Reply, Request
from enrichkit.providers.chat import to_reply
from enrichkit.providers.local.grammar import answer_format, runtime, runtime_version
from enrichkit.providers.local.prompting import (
    NOTES,
    REASON_TOKENS,
    Notes,
    free_text_first,
    guidance,
    reason_name,
    reasoning_first,
    reminder,
    without_reason,
)
from enrichkit.providers.local.weights import embedded_model_path, file_sha256

# One call at a time (llama.cpp runs one slot on the CPU) and no timeout (a 20-row pack takes over a
# minute on two cores). Single rows by default: measured with benchmarks/local_packing.py on the default
# model, packing saved no time on a CPU (output tokens dominate; packs add ids and re-asks) and made
# answers worse from 10 rows on; a caller who raises ``max_pack_size`` gets ids pinned per position,
# without which weak models drop or repeat ids.
CAPABILITIES = Capabilities(id_style="prefix", max_pack_size=1, concurrency=1, timeout=None, reads_schema=False)

DEFAULT_CONTEXT = 8192

SEED = 0


class LocalProvider:
    """``generate`` = one ``handle_chat_completions`` call on an in-process llama.cpp server, in a thread.

    The model loads on the first call (seconds) and is freed by ``aclose``; a later call loads it again.
    """

    name = "local"

    def __init__(
        self,
        path: str | Path,
        *,
        model: str | None = None,
        temperature: float = 0.0,
        context: int = DEFAULT_CONTEXT,
        threads: int | None = None,
        capabilities: Capabilities | None = None,
        notes: Notes = NOTES,
        prompt_cache: bool = True,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"local model file not found: {self.path}")
        self.model = model or self.path.stem
        self.temperature = temperature
        self.context = context
        self.threads = threads
        self.capabilities = capabilities or CAPABILITIES
        self.notes = notes
        self.prompt_cache = prompt_cache
        self._sha256: str | None = None
        self._server: Any = None
        self._loading = threading.Lock()

    def settings(self) -> dict[str, Any]:
        """The model file by content, the runtime, the sampling and the local prompt notes (not the
        display name, thread count or prompt cache, which do not change answers)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return {
            "model_sha256": self._sha256,
            "runtime": f"xllamacpp {runtime_version()}",
            "temperature": self.temperature,
            "seed": SEED,
            "notes": self.notes.key(),
        }

    def _load(self) -> Any:
        xllamacpp = runtime()
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = self.context
        params.n_parallel = 1
        params.sampling.temp = self.temperature
        params.sampling.seed = SEED
        params.cache_prompt = self.prompt_cache
        params.warmup = False
        params.verbosity = 0  # llama.cpp logs every request to stderr otherwise
        if self.threads:
            params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self.threads
        try:
            return xllamacpp.Server(params)
        except RuntimeError:
            raise UserError(
                f"llama.cpp cannot load {self.path} (not a GGUF model it supports, damaged, or too little memory)"
            ) from None

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._loading:
            if self._server is None:
                self._server = self._load()
            server = self._server
        try:
            response: dict[str, Any] = server.handle_chat_completions(body)
        except ValueError as exc:  # the request itself (schema, template) cannot be served
            raise FatalProviderError(f"llama.cpp rejected the request: {str(exc)[:200]}") from None
        except RuntimeError as exc:
            raise TransientError(f"llama.cpp failed: {str(exc)[:200]}") from None
        return response

    async def generate(self, request: Request) -> Reply:
        schema = free_text_first(request.schema) if self.notes.text_first else request.schema
        extra_tokens = 0
        if self.notes.reason:
            schema = reasoning_first(schema)
            extra_tokens = REASON_TOKENS * len(request.schema.get("prefixItems", [None]))
        body = {
            "messages": [
                {"role": "system", "content": request.system + guidance(request.schema, self.notes)},
                {"role": "user", "content": request.prompt + reminder(request.schema, self.notes)},
            ],
            **answer_format(schema, self.notes.compact),
            "max_tokens": request.max_output_tokens + extra_tokens,
            "temperature": self.temperature,
            "seed": SEED,
            "cache_prompt": self.prompt_cache,
        }
        reply = to_reply(await asyncio.to_thread(self._complete, body), provider="llama.cpp")
        if self.notes.reason:
            return replace(reply, text=without_reason(reply.text, reason_name(request.schema)))
        return reply

    async def count_tokens(self, request: Request) -> int | None:
        """None: counting would mean loading the model, so the engine's estimate is used."""
        return None

    def with_model(self, model: str) -> LocalProvider:
        """Another GGUF file (``model`` is its path) with the same settings."""
        return LocalProvider(
            model,
            temperature=self.temperature,
            context=self.context,
            threads=self.threads,
            notes=self.notes,
            prompt_cache=self.prompt_cache,
        )

    def on_tier(self, tier: str) -> LocalProvider:
        raise UserError(f"the local provider has no service tier {tier!r}")

    def batches(self) -> None:
        return None

    async def aclose(self) -> None:
        """Free the model (a call still running keeps it until it ends)."""
        self._server = None


def local_provider(model_path: Path | None = None) -> LocalProvider:
    """A provider on ``model_path``, or on the embedded default model (joined on first use)."""
    return LocalProvider(model_path or embedded_model_path())
