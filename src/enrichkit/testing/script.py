"""Which fault answers a request: the scripted ones for the next requests in order, then the rules for
every request they match. Every stub is a ``Script``."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable

from enrichkit.testing.faults import Answer, Asked, Fault, Outcome

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
