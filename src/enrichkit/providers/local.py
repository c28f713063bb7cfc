"""Local models in-process: llama.cpp through xllamacpp, answers constrained by a JSON-schema grammar."""

from __future__ import annotations

import asyncio
import importlib.metadata
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enrichkit.cache import default_dir
from enrichkit.errors import FatalProviderError, TransientError, UserError
from enrichkit.local_models import embedded_model_path, file_sha256
from enrichkit.providers.base import Capabilities, Reply, Request
from enrichkit.providers.chat import to_reply
from enrichkit.schema import restrict

# One call at a time (llama.cpp runs one slot on the CPU) and no timeout (a 20-row pack takes over a
# minute on two cores). Single rows by default: measured with benchmarks/local_packing.py on the default
# model, packing saved no time on a CPU (output tokens dominate; packs add ids and re-asks) and made
# answers worse from 10 rows on; a caller who raises ``max_pack_size`` gets ids pinned per position,
# without which weak models drop or repeat ids.
CAPABILITIES = Capabilities(id_style="prefix", max_pack_size=1, concurrency=1, timeout=None)
DEFAULT_CONTEXT = 8192
SEED = 0
INSTALL = "pip install 'enrichkit[local]'"

# What llama.cpp's JSON-schema-to-grammar conversion enforces while decoding (``minimum``/``maximum``
# only on integers, ``format`` only for date, time, date-time and uuid). The rest (maxWords, pattern,
# uniqueItems ...) is stated in the prompt and checked by enrichkit after the answer arrives.
SUPPORTED_KEYWORDS = frozenset(
    [
        "$defs",
        "$ref",
        "type",
        "format",
        "enum",
        "const",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "anyOf",
        "oneOf",
        "allOf",
        "properties",
        "additionalProperties",
        "required",
    ]
)
# ``maxWords`` becomes a ``pattern`` of at most that many space-separated words, which llama.cpp turns
# into grammar, so no answer can break it; each word is capped (generously) so a small model cannot
# ramble inside one word to the token limit. The word count is still checked afterwards.
WORD_CHARS = 24


def _for_grammar(node: Any) -> Any:
    if isinstance(node, list):
        return [_for_grammar(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs"):
            out[key] = {name: _for_grammar(sub) for name, sub in value.items()}
        elif key in ("enum", "const"):
            out[key] = value
        elif not (key == "items" and isinstance(value, bool)):  # llama.cpp rejects boolean ``items``
            out[key] = _for_grammar(value)
    words = node.get("maxWords")
    if isinstance(words, int) and words > 0 and not {"pattern", "maxLength"} & set(node):
        out["pattern"] = word_pattern(words)
    return out


def word_pattern(words: int) -> str:
    """At most ``words`` space-separated words of at most ``WORD_CHARS`` characters each (no quote or
    backslash: llama.cpp applies the pattern to the JSON string's characters as written)."""
    word = f'[^ "\\\\]{{1,{WORD_CHARS}}}'
    return f"^{word}( {word}){{0,{words - 1}}}$"


def grammar_schema(schema: Mapping[str, Any]) -> Any:
    """The answer schema as llama.cpp's grammar conversion takes it."""
    return restrict(_for_grammar(schema), SUPPORTED_KEYWORDS)


def _runtime_version() -> str:
    try:
        return importlib.metadata.version("xllamacpp")
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"local models need xllamacpp: {INSTALL}") from None


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
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"local model file not found: {self.path}")
        self.model = model or self.path.stem
        self.temperature = temperature
        self.context = context
        self.threads = threads
        self.capabilities = capabilities or CAPABILITIES
        self._sha256: str | None = None
        self._server: Any = None
        self._loading = threading.Lock()

    def settings(self) -> dict[str, Any]:
        """The model file by content, the runtime and the sampling (not the display name or thread count)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return {
            "model_sha256": self._sha256,
            "runtime": f"xllamacpp {_runtime_version()}",
            "temperature": self.temperature,
            "seed": SEED,
        }

    def _load(self) -> Any:
        try:
            import xllamacpp
        except ImportError:
            raise UserError(f"local models need xllamacpp: {INSTALL}") from None
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = self.context
        params.n_parallel = 1
        params.sampling.temp = self.temperature
        params.sampling.seed = SEED
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
        body = {
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.prompt},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": grammar_schema(request.schema), "strict": True},
            },
            "max_tokens": request.max_output_tokens,
            "temperature": self.temperature,
            "seed": SEED,
        }
        return to_reply(await asyncio.to_thread(self._complete, body), provider="llama.cpp")

    async def count_tokens(self, request: Request) -> int | None:
        """None: counting would mean loading the model, so the engine's estimate is used."""
        return None

    def with_model(self, model: str) -> LocalProvider:
        """Another GGUF file (``model`` is its path) with the same settings."""
        return LocalProvider(model, temperature=self.temperature, context=self.context, threads=self.threads)

    def on_tier(self, tier: str) -> LocalProvider:
        raise UserError(f"the local provider has no service tier {tier!r}")

    def batches(self) -> None:
        return None

    async def aclose(self) -> None:
        """Free the model (a call still running keeps it until it ends)."""
        self._server = None


def local_provider(model_path: Path | None = None, cache_dir: Path | None = None) -> LocalProvider:
    """A provider on ``model_path``, or on the embedded default model (joined under ``cache_dir`` on first use)."""
    if model_path is None:
        model_path = embedded_model_path(Path(cache_dir) if cache_dir is not None else default_dir())
    return LocalProvider(model_path)
