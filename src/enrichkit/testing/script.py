"""Which fault answers a request: the scripted ones for the next requests in order, then the rules for
every request they match. Every stub is a ``Script``; ``scripted`` makes one a ``FunctionProvider``'s
function, so the same faults drive the engine at the provider seam:

    script = scripted(drop_ids("r3"), rules=[http_error(503)])
    provider = FunctionProvider(script)
    script.calls          # every request, as ``Asked``
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
from collections.abc import Callable, Iterable

from enrichkit.errors import ProviderError
from enrichkit.providers.base import Reply, Request, Token, Usage
from enrichkit.providers.classify import by_status, transport
from enrichkit.testing.faults import Answer, Asked, Error, Fault, Outcome, Wire, tokens, tokens_of
from enrichkit.testing.logprobs import Probs
from enrichkit.testing.media import joined

When = Callable[[Asked], bool]


class Script:
    """Faults for the next requests, in order (``None``: answer normally), then rules; ``calls`` keeps
    every request; ``probs``: the probabilities of the values of an answer asked for its log-probabilities
    (an ``Answer``'s own ``probs`` first)."""

    def __init__(self, *faults: Fault | None, rules: Iterable[Fault] = ()) -> None:
        self.lock = threading.RLock()
        self.calls: list[Asked] = []
        self._next: collections.deque[Fault | None] = collections.deque(faults)
        self._rules: list[tuple[Fault, When | None]] = [(rule, None) for rule in rules]
        self.refusal: Error | None = None
        self.probs = Probs()

    def script(self, *faults: Fault | None) -> None:
        """Use these faults for the next requests, in order (``None``: answer normally)."""
        with self.lock:
            self._next.extend(faults)

    def rule(self, fault: Fault, when: When | None = None) -> None:
        """Once the script is used up, answer every request ``when`` holds for with ``fault``; rules are
        tried in the order added, and a fault that returns None passes the request on to the next."""
        with self.lock:
            self._rules.append((fault, when))

    def refuse(self, status: int, message: str) -> None:
        """Answer every request from now on, token counts included, with this error (a bad key, an unknown
        model)."""
        self.refusal = Error(status, message)

    def pick(self, asked: Asked) -> list[Fault]:
        """The faults to try on ``asked``, in order (the caller holds ``lock``: ``when`` sees the
        requests recorded so far)."""
        if self._next:
            fault = self._next.popleft()
            return [] if fault is None else [fault]
        return [fault for fault, when in self._rules if when is None or when(asked)]

    @staticmethod
    def decide(faults: list[Fault], asked: Asked) -> Outcome:
        """The first outcome a fault gives, else the default answer."""
        return next((out for fault in faults if (out := fault(asked)) is not None), None) or Answer(asked.answer)


class Scripted(Script):
    """A ``FunctionProvider`` function: an answer becomes a ``Reply``, an error is raised as the real
    providers raise it (``classify.by_status``), a delay is slept (past the request's timeout, the call
    fails as a timed-out one does)."""

    async def __call__(self, request: Request, model: str = "function") -> Reply:
        _, media = joined([p if isinstance(p, str) else (p.mime, p.data) for p in request.parts()])
        asked = Asked(
            model,
            request.system,
            request.prompt,
            request.schema,
            received=_now(),
            logprobs=request.logprobs,
            media=media,
        )
        with self.lock:
            self.calls.append(asked)
            faults = [] if self.refusal is not None else self.pick(asked)
        outcome = self.refusal or self.decide(faults, asked)
        if isinstance(outcome, Wire):
            raise TypeError("a Wire reply needs a stub: the provider seam has no wire")
        if request.timeout is not None and outcome.delay > request.timeout:
            await asyncio.sleep(request.timeout)
            raise transport(TimeoutError(), "function", "")
        if outcome.delay:
            await asyncio.sleep(outcome.delay)
        if isinstance(outcome, Error):
            raise _raised(outcome, model)
        text = outcome.content(asked)
        pairs = tokens_of(outcome, asked, self.probs)
        chosen = None if pairs is None else tuple(_token(*scripted) for scripted in pairs)
        return Reply(text, outcome.finish, Usage(asked.prompt_tokens, tokens(text or "")), tokens=chosen)

    def count(self, request: Request) -> int:
        """A free token count (``FunctionProvider(script, count=script.count)``): recorded, never scripted;
        the refusal, if any, is raised as the real providers raise it."""
        asked = Asked("function", request.system, request.prompt, request.schema, action="count", received=_now())
        with self.lock:
            self.calls.append(asked)
        if self.refusal is not None:
            raise _raised(self.refusal, asked.model)
        return asked.prompt_tokens


def _now() -> float:
    """The event loop's clock (a test's virtual clock, where it runs on one)."""
    return asyncio.get_running_loop().time()


def _raised(error: Error, model: str) -> ProviderError:
    """``error`` as enrichkit's kind of error, as a real provider would raise it."""
    return by_status(
        error.status,
        error.message,
        provider="function",
        model=model,
        code=error.code or "",
        retry_after=error.retry_after,
        exhausted=error.quota or "",
    )


def scripted(*faults: Fault | None, rules: Iterable[Fault] = ()) -> Scripted:
    """A ``FunctionProvider`` function answering by these faults: ``FunctionProvider(scripted(drop_ids("r3")))``."""
    return Scripted(*faults, rules=rules)


def _token(text: str, logprob: float, rival: str | None) -> Token:
    """A scripted token as a provider gives it: with its alternatives (itself, and its rival with what it leaves)."""
    top = (
        ((text, logprob),) if rival is None else ((text, logprob), (rival, math.log(max(1e-9, 1 - math.exp(logprob)))))
    )
    return Token(text, logprob, top)
