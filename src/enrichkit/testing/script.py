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
import threading
from collections.abc import Callable, Iterable

from enrichkit.providers.base import Reply, Request, Usage
from enrichkit.providers.classify import by_status, transport
from enrichkit.testing.faults import Answer, Asked, Error, Fault, Outcome, Wire, tokens

When = Callable[[Asked], bool]


class Script:
    """Faults for the next requests, in order (``None``: answer normally), then rules; ``calls`` keeps
    every request."""

    def __init__(self, *faults: Fault | None, rules: Iterable[Fault] = ()) -> None:
        self.lock = threading.RLock()
        self.calls: list[Asked] = []
        self._next: collections.deque[Fault | None] = collections.deque(faults)
        self._rules: list[tuple[Fault, When | None]] = [(rule, None) for rule in rules]

    def script(self, *faults: Fault | None) -> None:
        """Use these faults for the next requests, in order (``None``: answer normally)."""
        with self.lock:
            self._next.extend(faults)

    def rule(self, fault: Fault, when: When | None = None) -> None:
        """Once the script is used up, answer every request ``when`` holds for with ``fault``; rules are
        tried in the order added, and a fault that returns None passes the request on to the next."""
        with self.lock:
            self._rules.append((fault, when))

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

    def outcome(self, asked: Asked) -> Outcome:
        """Record ``asked`` and decide what it gets."""
        with self.lock:
            self.calls.append(asked)
            faults = self.pick(asked)
        return self.decide(faults, asked)


class Scripted(Script):
    """A ``FunctionProvider`` function: an answer becomes a ``Reply``, an error is raised as the real
    providers raise it (``classify.by_status``), a delay is slept (past the request's timeout, the call
    fails as a timed-out one does)."""

    async def __call__(self, request: Request) -> Reply:
        asked = Asked("function", request.system, request.prompt, request.schema)
        outcome = self.outcome(asked)
        if isinstance(outcome, Wire):
            raise TypeError("a Wire reply needs a stub: the provider seam has no wire")
        if request.timeout is not None and outcome.delay > request.timeout:
            await asyncio.sleep(request.timeout)
            raise transport(TimeoutError(), "function", "")
        if outcome.delay:
            await asyncio.sleep(outcome.delay)
        if isinstance(outcome, Error):
            raise by_status(
                outcome.status,
                outcome.message,
                provider="function",
                model=asked.model,
                code=outcome.code or "",
                retry_after=outcome.retry_after,
                exhausted=outcome.quota or "",
            )
        text = outcome.content(asked)
        return Reply(text, outcome.finish, Usage(asked.prompt_tokens, tokens(text or "")))


def scripted(*faults: Fault | None, rules: Iterable[Fault] = ()) -> Scripted:
    """A ``FunctionProvider`` function answering by these faults: ``FunctionProvider(scripted(drop_ids("r3")))``."""
    return Scripted(*faults, rules=rules)
