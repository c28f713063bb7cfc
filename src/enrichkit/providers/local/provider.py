"""A local model in-process: llama.cpp through xllamacpp, answers constrained by a JSON-schema grammar."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from enrichkit.errors import FatalProviderError, TransientError, UserError
from enrichkit.providers.base import Capabilities, Reply, Request
from enrichkit.providers.chat import to_reply
from enrichkit.providers.local.grammar import (
    answer_format,
    fit_words,
    free_text_class,
    has_llguidance,
    runtime,
    runtime_version,
    word_slack,
)
from enrichkit.providers.local.logprobs import ASK, answer_tokens
from enrichkit.providers.local.prefix import Prefix, prefixes_dir, save_path
from enrichkit.providers.local.priors import FILE as PRIORS_FILE
from enrichkit.providers.local.priors import Priors, Tally, context
from enrichkit.providers.local.prompting import (
    NOTES,
    REASON_TOKENS,
    REASON_WORDS,
    Notes,
    answer_fields,
    free_text_first,
    guidance,
    reason_name,
    reasoning_first,
    reminder,
    without_reason,
    word_limits,
)
from enrichkit.providers.local.served import Served, ServerGone, Watch, announced, find, served_dir
from enrichkit.providers.local.staged import Value, answer, no_copy, plan
from enrichkit.providers.local.weights import file_sha256, local_model
from enrichkit.task.summaries import summary_fields

# No timeout (a 20-row pack takes over a minute on two cores). Single rows by default: measured with
# benchmarks/local_packing.py on the default model, packing saved no time on a CPU (output tokens
# dominate; packs add ids and re-asks) and made answers worse from 10 rows on; with two slots, packs of
# 3 saved 3 % of CPU a row and copied more descriptions (benchmarks/local_slots.py); a caller who raises
# ``max_pack_size`` gets ids pinned per position, without which weak models drop or repeat ids. The
# concurrency is the number of llama.cpp's slots (``default_slots``), which decode together.
# ``own_words`` off: on the demo's 20 rows the repair copied again 13 times in 15 and took 35 calls for
# 20 rows (benchmarks/local_quality.py, README "Own words"); a caller may turn it on.
CAPABILITIES = Capabilities(
    id_style="prefix",
    max_pack_size=1,
    concurrency=1,
    fixed_concurrency=True,
    timeout=None,
    reads_schema=False,
    logprobs=True,
)

DEFAULT_CONTEXT = 8192

SLOT_CONTEXT = 4096  # tokens each slot holds beyond the first: a single row's prompt and answer fit well

MAX_SLOTS = 4

SLOT_MEMORY = 160 << 20  # bytes of KV cache and compute buffers a further slot takes (Qwen-1.5B, 4096 tokens)

SAVE_EVERY = 25  # decisions counted into the priors between two writes of their file (and at the run's end)

PROMPT_CACHE_MIB = 256  # llama.cpp keeps slots' prompts in host memory up to this, to restore a prefix


def default_slots() -> int:
    """How many rows decode together: one a core, up to ``MAX_SLOTS``, fewer where the memory free
    beyond the model would not hold their KV caches."""
    cores = os.cpu_count() or 1
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        free = MAX_SLOTS * SLOT_MEMORY
    return max(1, min(MAX_SLOTS, cores, free // SLOT_MEMORY))


SEED = 0


_LOADED: dict[tuple[Any, ...], tuple[Any, Prefix, Priors]] = {}
"""The llama.cpp server of this process, the prompt starts its slots hold and the model's priors
(``priors``, kept beside the prompt starts), by what it was built from:
a model is loaded (memory-mapped) once per process, whichever provider asks (runs one after another,
fallbacks); one at a time."""

_LOADING = threading.Lock()

IDLE_POLL = 5.0  # seconds between two looks at the slots of a server that stops when idle

WARM_GRAMMAR = "%llguidance {}\nstart: /a/\n"
"""A grammar whose first use makes llama.cpp set up llguidance's view of the vocabulary (~0.7 s on the
default model, once per process): ``serve`` does it before any run asks."""


class LocalProvider:
    """``generate`` = an answer from an in-process llama.cpp server, in a thread: decoded in stages
    (``staged``, ``providers/local/staged.py``: only the values decoded, the JSON around them written)
    where the request's schema allows, else one ``handle_chat_completions`` call.

    The model loads on the first call (``load_seconds``: a second or two from the page cache) and stays
    loaded for the process (``_LOADED``); where ``enrichkit serve`` holds it in another process with the
    same settings (``served``), the calls go there instead and nothing is loaded. The prompt's fixed
    start (the system prompt) is processed once and kept on disk (``prefix.Prefix``: ``prefix_dir``,
    default ``prefixes_dir()``), and every slot starts from it; each call then processes only its own row.
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
        slots: int | None = None,
        prefix_dir: Path | None = None,
        staged: bool = True,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"local model file not found: {self.path}")
        self.model = model or self.path.stem
        self.temperature = temperature
        self.context = context
        self.threads = threads
        self.notes = notes
        self.prompt_cache = prompt_cache
        self.prefix_dir = prefix_dir
        self.staged = staged
        self._sha256: str | None = None
        given = slots or (capabilities.concurrency if capabilities else None)
        self.served = self._find_served(given)
        """The model as ``enrichkit serve`` holds it in another process, used instead of a load (None: none)."""
        self.slots = self.served.slots if self.served is not None else given or default_slots()
        self.capabilities = replace(capabilities or CAPABILITIES, concurrency=self.slots)
        self._server: Any = None
        self.prefix: Prefix | None = None
        """The prompt starts the server's slots hold (None before the first call)."""
        self.priors: Priors | None = None
        """The model's lean to values of closed fields, as the rows showed it (None before the first call)."""
        self.load_seconds: float | None = None
        """How long this provider's load of the model took (None: not loaded by it, or not yet)."""
        self.served_by: int | None = None
        """The pid of the ``enrichkit serve`` whose model this provider's calls went to (None: none)."""
        self.debiased = Tally()
        """The answers of this provider whose ``debias`` choice was corrected, and those it turned."""

    def settings(self) -> dict[str, Any]:
        """The model file by content, the runtime, the sampling, the local prompt notes and whether answers
        are decoded in stages (the JSON around the values tokenized as text rather than decoded, so some
        answers differ); not the display name, thread count or prompt cache, which do not change answers."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return {
            "model_sha256": self._sha256,
            "runtime": f"xllamacpp {runtime_version()}",
            "temperature": self.temperature,
            "seed": SEED,
            "notes": self.notes.key(),
            **({"decoding": "staged"} if self.staged else {}),
        }

    def _find_served(self, slots: int | None) -> Served | None:
        """This model as ``enrichkit serve`` holds it, where its settings are these (the slots and threads
        only where given: else the served ones), and it answers."""
        if not served_dir().is_dir() or not any(served_dir().glob("*.json")):
            return None  # nothing served: the model's sha256 is not needed
        served = find(self.settings()["model_sha256"])
        if served is None:
            return None
        folder = (self.prefix_dir or prefixes_dir()).expanduser().resolve()
        fits = (
            served.runtime == runtime_version()
            and served.context == self.context
            and Path(served.prefix_dir) == folder
            and slots in (None, served.slots)
            and self.threads in (None, served.threads)
        )
        return served if fits else None

    def _load(self, folder: Path) -> Any:
        xllamacpp = runtime()
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = self.context + (self.slots - 1) * SLOT_CONTEXT  # shared by the slots (unified KV cache)
        params.n_parallel = self.slots
        params.kv_unified = True
        params.cache_ram_mib = PROMPT_CACHE_MIB
        params.fit_params = False  # fitting to GPU memory first loads the model a second time; CPU only here
        params.sampling.temp = self.temperature
        params.sampling.seed = SEED
        params.cache_prompt = self.prompt_cache
        params.warmup = False
        params.verbosity = 0  # llama.cpp logs every request to stderr otherwise
        params.endpoint_slots = True
        params.slot_save_path = str(folder) + os.sep
        if self.threads:
            params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self.threads
        try:
            return xllamacpp.Server(params)
        except RuntimeError:
            raise UserError(
                f"llama.cpp cannot load {self.path} (not a GGUF model it supports, damaged, or too little memory)"
            ) from None

    def _loaded(self) -> tuple[Any, Prefix]:
        """The server (the served one, or loaded now if this process has none for these settings) and its
        ``Prefix``."""
        with _LOADING:
            if self._server is None:
                if (loaded := _LOADED.get(self._loads())) is None:
                    _LOADED.clear()  # one model in memory at a time
                    started = time.perf_counter()
                    server: Any = self.served
                    folder = Path(self.served.prefix_dir) if self.served else save_path(self.prefix_dir)
                    if server is None:
                        server = self._load(folder)
                        self.load_seconds = time.perf_counter() - started
                    identity = f"{self.settings()['model_sha256']} xllamacpp {runtime_version()}"
                    prefix = Prefix(server, folder, self.slots, identity)
                    loaded = _LOADED[self._loads()] = (server, prefix, Priors(folder / PRIORS_FILE))
                self._server, self.prefix, self.priors = loaded
                if isinstance(self._server, Served):
                    self.served_by = self._server.pid
            assert self.prefix is not None
            return self._server, self.prefix

    def _loads(self) -> tuple[Any, ...]:
        settings = [self.context, self.threads, self.slots, self.temperature, self.prompt_cache, self.prefix_dir]
        return (self.path, *settings)

    def _lost(self, gone: Any) -> None:
        """The served model ``gone`` stopped answering: the next call loads the model here."""
        with _LOADING:
            if (loaded := _LOADED.get(self._loads())) is not None and loaded[0] is gone:
                del _LOADED[self._loads()]
            if self._server is gone:
                self._server, self.served = None, None

    def _served_call(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """The server's handler ``name`` on ``body``; where the served model stopped answering, once more
        on the model loaded here."""
        server, _ = self._loaded()
        try:
            return _served(getattr(server, name), body)
        except ServerGone:
            self._lost(server)
            server, _ = self._loaded()
            return _served(getattr(server, name), body)

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        _, prefix = self._loaded()
        if self.prompt_cache:
            prefix.warm(body["messages"][0]["content"])
        return self._served_call("handle_chat_completions", body)

    def _call(self, body: dict[str, Any]) -> dict[str, Any]:
        """One raw completion (``body``'s prompt already rendered)."""
        return self._served_call("handle_completions", body)

    def serve(self, ready: Callable[[Served, float], None], idle: float | None = None) -> bool:
        """Load the model here and keep it for the runs of other processes (``served``) until interrupted
        (Ctrl-C; the CLI takes SIGTERM as one) or, with ``idle``, until no run has asked anything for that
        many seconds (True: stopped so); ``ready`` is told what is served and the seconds it took once
        runs can use it."""
        if self.served is not None:
            raise UserError(f"{self.path.name} is already served (enrichkit serve, pid {self.served.pid})")
        started = time.perf_counter()
        server, prefix = self._loaded()
        _served(server.handle_completions, {"prompt": " ", "n_predict": 1, "grammar": WARM_GRAMMAR})
        seconds = time.perf_counter() - started
        sha256, version = self.settings()["model_sha256"], runtime_version()
        served = Served(
            server.listening_address, os.getpid(), sha256, version, self.context, self.slots, self.threads,
            str(prefix.folder.resolve()),
        )  # fmt: skip
        with announced(served), contextlib.suppress(KeyboardInterrupt):
            ready(served, seconds)
            if idle is None:
                threading.Event().wait()
            else:
                watch = Watch(served.address)
                while (left := idle - watch.idle()) > 0:
                    time.sleep(min(left, IDLE_POLL))
                return True
        return False

    def _plan(self, request: Request, sent: Request) -> tuple[Value, ...] | None:
        """The values of ``request``'s answer (``sent``: as the model gets it) to decode in stages, or None:
        asked as a whole."""
        if not (self.staged and self.notes.compact and has_llguidance()):
            return None
        summaries = summary_fields(answer_fields(request.schema), request.system) if self.notes.no_copy else []
        return plan(sent.schema, free_text_class(request.system + request.prompt), summaries)

    def _staged(self, request: Request, sent: Request, values: tuple[Value, ...]) -> Reply:
        """``request``'s answer written value by value (``staged.answer``). Each call goes to the slot
        llama.cpp picks: the idle one whose tokens share the longest start with its prompt, the row's own
        (measured: pinning a row to a slot with ``id_slot`` made two slots process the system prompt
        again on most rows)."""
        for attempt in range(2):
            server, prefix = self._loaded()
            if self.prompt_cache:
                prefix.warm(sent.system, reminder(request.schema, self.notes, request.system)[0])
            try:
                before, after = prefix.parts(sent.system)
                break
            except (OSError, ValueError, KeyError) as exc:
                if attempt or not isinstance(server, Served) or server.answers():
                    raise TransientError(f"llama.cpp could not render the prompt: {str(exc)[:200]}") from None
                self._lost(server)  # the served model stopped: loaded here for a second try
        body = {"temperature": self.temperature, "seed": SEED, "cache_prompt": self.prompt_cache}
        prompt = before + sent.prompt + after
        task = context(prefix.identity, sent.system)  # hashed once a call, not at each decision
        priors, tally, budget, sampling = self.priors, self.debiased, sent.max_output_tokens, no_copy(self.context)
        reply = answer(self._call, prompt, values, body, request.logprobs, budget, sampling, priors, task, tally)
        if priors is not None and any(v.debias for v in values):
            priors.save_every(SAVE_EVERY)
        return reply

    def as_sent(self, request: Request) -> Request:
        """``request`` as the model gets it: the notes added to the system prompt and the user message
        (its reminder first: the same on every row, so llama.cpp keeps it with the system prompt),
        the free text first in the answer schema (and a reason before it), room in the output tokens
        for the words free text may run over while decoding (``word_slack``) and for the reason."""
        schema = free_text_first(request.schema) if self.notes.text_first else request.schema
        rows = len(request.schema.get("prefixItems", [None]))
        extra_tokens = rows * sum(2 * word_slack(words) for words in word_limits(request.schema).values())
        if self.notes.reason:
            schema = reasoning_first(schema)
            extra_tokens += (REASON_TOKENS + 2 * word_slack(REASON_WORDS)) * rows
        lead, tail = reminder(request.schema, self.notes, request.system)
        return replace(
            request,
            system=request.system + guidance(request.schema, self.notes, request.system),
            prompt=lead + request.prompt + tail,
            schema=schema,
            max_output_tokens=request.max_output_tokens + extra_tokens,
        )

    def body(self, request: Request) -> dict[str, Any]:
        """The chat-completions body of ``request``: ``as_sent``, with free text kept to the scripts
        of the task and the row (``free_text_class``)."""
        sent = self.as_sent(request)
        return {
            "messages": [{"role": "system", "content": sent.system}, {"role": "user", "content": sent.prompt}],
            **answer_format(sent.schema, self.notes.compact, free_text_class(request.system + request.prompt)),
            "max_tokens": sent.max_output_tokens,
            "temperature": self.temperature,
            "seed": SEED,
            "cache_prompt": self.prompt_cache,
            **(ASK if request.logprobs else {}),
        }

    async def generate(self, request: Request) -> Reply:
        sent = self.as_sent(request)
        if (values := self._plan(request, sent)) is not None:
            reply = await asyncio.to_thread(self._staged, request, sent, values)
        else:
            doc = await asyncio.to_thread(self._complete, self.body(request))
            reply = to_reply(doc, provider="llama.cpp")
            if request.logprobs:  # the tokens as generated: the answer before it is trimmed below
                reply = replace(reply, tokens=answer_tokens(doc))
        if has_llguidance() and (limits := word_limits(request.schema)):
            reply = replace(reply, text=fit_words(reply.text, limits))
        if self.notes.reason:
            return replace(reply, text=without_reason(reply.text, reason_name(request.schema)))
        return reply

    async def count_tokens(self, request: Request) -> int | None:
        """None: counting would mean loading the model, so the engine's estimate is used."""
        return None

    def with_model(self, model: str) -> LocalProvider:
        """Another GGUF file (``model``: its path or name, as ``--model`` takes it) with the same settings."""
        return LocalProvider(
            local_model(model),
            temperature=self.temperature,
            context=self.context,
            threads=self.threads,
            notes=self.notes,
            prompt_cache=self.prompt_cache,
            slots=self.slots,
            prefix_dir=self.prefix_dir,
            staged=self.staged,
        )

    def on_tier(self, tier: str) -> LocalProvider:
        raise UserError(f"the local provider has no service tier {tier!r}")

    def batches(self) -> None:
        return None

    async def aclose(self) -> None:
        """Let go of the server, the priors written; the process keeps the model loaded for the next run
        (``_LOADED``)."""
        if self.priors is not None:
            await asyncio.to_thread(self.priors.save)
        self._server = None


def local_provider(model_path: Path | None = None, model: str | None = None, slots: int | None = None) -> LocalProvider:
    """A provider on ``model_path``, else on the GGUF file ``model`` names (``weights.local_model``: by
    default the embedded model, joined on first use), with ``slots`` rows decoding together
    (default ``default_slots``)."""
    return LocalProvider(model_path or local_model(model), slots=slots)


def _served(handler: Callable[[dict[str, Any]], dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """``handler(body)`` (one of the server's), its errors mapped: a request that cannot be served (its
    schema, its template) is fatal, a failure of the server transient."""
    try:
        return handler(body)
    except ServerGone:
        raise
    except ValueError as exc:
        raise FatalProviderError(f"llama.cpp rejected the request: {str(exc)[:200]}") from None
    except RuntimeError as exc:
        raise TransientError(f"llama.cpp failed: {str(exc)[:200]}") from None
