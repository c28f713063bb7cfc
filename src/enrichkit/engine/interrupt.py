"""Ctrl-C as a clean stop of a live run (the command line's): the calls stop, what was answered is kept
and written, and the rows not asked are counted, as when a fatal error stops a run.

``Interrupt.installed()`` makes it the SIGINT handler (SIGTERM calls that handler too, ``cli.common``).
A first Ctrl-C once the run is ``armed`` (a live or flex run) cancels the calls in flight and raises
``Interrupted`` where ``sending`` awaits them; between two chunks' calls, the next chunk sends nothing.
Before it is armed (the set-up, a batch job's wait) and at a second Ctrl-C, the handler it replaced
runs (asyncio's cancels the whole run: the receipt so far, no output).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import Any, TypeVar

from enrichkit.errors import EnrichkitError

T = TypeVar("T")


class Interrupted(EnrichkitError):
    """Ctrl-C (or SIGTERM) stopped the run."""


class Interrupt:
    """The SIGINT handler of a run; ``requested`` once a Ctrl-C asked the armed run to stop."""

    def __init__(self) -> None:
        self.requested = False
        self._armed = False
        self._previous: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sending: asyncio.Task[Any] | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """In the block (in a coroutine, on the main thread), this is the SIGINT handler."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._loop = asyncio.get_running_loop()
        self._previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._signal)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, self._previous)

    def arm(self) -> None:
        """The run sends live calls: from now on a first Ctrl-C stops it cleanly."""
        self._armed = True

    async def sending(self, job: Coroutine[Any, Any, T]) -> T:
        """Await ``job`` (a chunk's calls); a Ctrl-C cancels it and raises ``Interrupted``."""
        if self.requested:
            job.close()
            raise Interrupted("interrupted")
        task = asyncio.current_task()
        assert task is not None
        self._sending = task
        try:
            return await job
        except asyncio.CancelledError:
            if self.requested and task.uncancel() == 0:  # the cancel was ours, and no one else's
                raise Interrupted("interrupted") from None
            raise
        finally:
            self._sending = None

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._armed or self.requested or self._loop is None:
            if callable(self._previous):
                self._previous(signum, frame)
                return
            raise KeyboardInterrupt
        self.requested = True
        self._loop.call_soon_threadsafe(self._stop)

    def _stop(self) -> None:
        if self._sending is not None:
            self._sending.cancel()
