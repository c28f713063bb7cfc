"""Local models in-process: llama.cpp through xllamacpp, answers constrained by a JSON-schema grammar."""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from enrichkit.cache import default_dir
from enrichkit.errors import FatalProviderError, TransientError, UserError
from enrichkit.local_models import embedded_model_path, file_sha256
from enrichkit.prompt import (
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

# What the grammar enforces while decoding. xllamacpp's llama.cpp is built with llguidance, whose
# JSON-schema compiler covers string lengths, regular expressions (unanchored ones too, as JSON Schema
# means them), number and integer ranges, the common formats, and ``allOf`` as an intersection; a
# runtime without llguidance gets llama.cpp's own converter (``response_format``), which enforces less.
# The rest (uniqueItems ...) is stated in the prompt; every answer is checked by enrichkit anyway.
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
        "multipleOf",
        "anyOf",
        "oneOf",
        "allOf",
        "properties",
        "additionalProperties",
        "required",
    ]
)
FORMATS = frozenset(["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri"])
# ``lenient``: what llguidance cannot compile is ignored instead of dropping the whole grammar (``oneOf``
# is taken as ``anyOf``); compact JSON (no whitespace between tokens) unless ``Notes.compact`` is off.
GUIDANCE = {"whitespace_flexible": False, "lenient": True}
# ``maxWords`` becomes a ``pattern`` of at most that many space-separated words, so no answer can break
# it; each word is capped (generously) so a small model cannot ramble inside one word to the token
# limit. Under llguidance it is intersected with the field's own ``pattern`` and length limits.
WORD_CHARS = 24
# Regular-expression syntax llguidance cannot compile (look-around, back-references, word boundaries,
# atomic groups, possessive quantifiers, Python-only escapes): such a pattern is left to the check.
_UNCOMPILABLE = re.compile(r"\\[1-9bBZGk]|\(\?[=!<>(]|\(\?P[=>]|[*+?}]\+")
_ESCAPES_AND_SETS = re.compile(r"\\.|\[\^?\]?(?:\\.|[^\]\\])*\]")
_BOUNDS = [("minLength", "maxLength"), ("minItems", "maxItems"), ("minimum", "maximum")]


def compilable(pattern: str) -> bool:
    """Whether llguidance can turn ``pattern`` into grammar (conservatively: unsure means no)."""
    if _UNCOMPILABLE.search(pattern):
        return False
    inner = pattern.removeprefix("^")
    inner = inner[:-1] if inner.endswith("$") and not inner.endswith("\\$") else inner
    return not re.search(r"[\^$]", _ESCAPES_AND_SETS.sub("", inner))  # no anchor inside


def word_pattern(words: int, llguidance: bool = True) -> str:
    """At most ``words`` words (no whitespace inside, as ``str.split`` counts them) of at most
    ``WORD_CHARS`` characters, one space apart; a comma or semicolon only ends a word, so a model
    out of words cannot go on gluing them together ("a,b,c"). llama.cpp's own converter reads the
    JSON text as written, so there a word also excludes the quote and backslash."""
    if not llguidance:
        return f'^[^ "\\\\]{{1,{WORD_CHARS}}}( [^ "\\\\]{{1,{WORD_CHARS}}}){{0,{words - 1}}}$'
    word = f"[^\\s\\x1c-\\x1f,;]{{1,{WORD_CHARS}}}[,;]?"
    return f"^{word}( {word}){{0,{words - 1}}}$"


def _for_grammar(node: Any, llguidance: bool) -> Any:
    if isinstance(node, list):
        return [_for_grammar(item, llguidance) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs"):
            out[key] = {name: _for_grammar(sub, llguidance) for name, sub in value.items()}
        elif key in ("enum", "const"):
            out[key] = value
        elif llguidance or not (key == "items" and isinstance(value, bool)):  # llama.cpp's converter rejects it
            out[key] = _for_grammar(value, llguidance)
    if llguidance:
        if "pattern" in out and not (isinstance(out["pattern"], str) and compilable(out["pattern"])):
            del out["pattern"]
        if "format" in out and out["format"] not in FORMATS:
            del out["format"]
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False  # llguidance follows JSON Schema: unlisted keys are allowed
    for low, high in _BOUNDS:  # a contradiction would make the grammar unsatisfiable: leave it to the check
        if isinstance(out.get(low), int | float) and isinstance(out.get(high), int | float) and out[low] > out[high]:
            del out[low], out[high]
    words = node.get("maxWords")
    if isinstance(words, int) and words > 0:
        if not llguidance:
            if not {"pattern", "maxLength"} & set(node):
                out["pattern"] = word_pattern(words, llguidance=False)
        elif "pattern" in out:
            out["allOf"] = [*out.get("allOf", []), {"pattern": word_pattern(words)}]
        else:
            out["pattern"] = word_pattern(words)
    return out


def grammar_schema(schema: Mapping[str, Any], llguidance: bool = True, compact: bool = True) -> Any:
    """The answer schema as the grammar compiler takes it (llguidance, or llama.cpp's own converter)."""
    out = restrict(_for_grammar(schema, llguidance), SUPPORTED_KEYWORDS)
    if not llguidance:
        return out
    return {"x-guidance": GUIDANCE | {"whitespace_flexible": not compact}, **out}


def _runtime_version() -> str:
    try:
        return importlib.metadata.version("xllamacpp")
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"local models need xllamacpp: {INSTALL}") from None


def _runtime() -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise UserError(f"local models need xllamacpp: {INSTALL}") from None
    return xllamacpp


@functools.cache
def _llguidance() -> bool:
    """Whether this build of llama.cpp compiles grammars with llguidance (the Linux wheels do)."""
    return str(_runtime().json_schema_to_grammar({"type": "string"})).startswith("%llguidance")


def answer_format(schema: Mapping[str, Any], compact: bool = True) -> dict[str, Any]:
    """The part of a request that constrains the answer to ``schema``: a llguidance grammar where the
    runtime has it, else ``response_format`` for llama.cpp's own converter."""
    if _llguidance():
        return {"grammar": _runtime().json_schema_to_grammar(grammar_schema(schema, compact=compact))}
    strict = {"name": "answer", "schema": grammar_schema(schema, llguidance=False), "strict": True}
    return {"response_format": {"type": "json_schema", "json_schema": strict}}


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
            "runtime": f"xllamacpp {_runtime_version()}",
            "temperature": self.temperature,
            "seed": SEED,
            "notes": self.notes.key(),
        }

    def _load(self) -> Any:
        xllamacpp = _runtime()
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


def local_provider(model_path: Path | None = None, cache_dir: Path | None = None) -> LocalProvider:
    """A provider on ``model_path``, or on the embedded default model (joined under ``cache_dir`` on first use)."""
    if model_path is None:
        model_path = embedded_model_path(Path(cache_dir) if cache_dir is not None else default_dir())
    return LocalProvider(model_path)
