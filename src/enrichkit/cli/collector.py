"""The cyclic garbage collector, paused while the ``enrichkit`` program starts up.

Start-up is imports (click, enrichkit, the provider's SDK with its hundreds of pydantic models) and opening
the run: ~100,000 objects that live as long as the process, and almost no garbage. The collector's passes
over them while they are made cost ~20 % of the start-up's CPU, and every later full pass scans them again.
The program (``enrichkit.__main__``) pauses it; once the command's start-up is over (``started``: a run's
context is open, or the command is not a run), what start-up made is frozen (no later pass scans it) and
the collector runs as usual. Without the program's pause (the library, a test's in-process command) these
do nothing.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Pause the collector until ``started`` (if it runs)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def started() -> None:
    """Start-up is over: freeze what it made and run the collector again, if ``pause`` paused it."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def restore() -> None:
    """The collector as it was before ``pause``, with nothing frozen (for the interpreter's usual exit)."""
    started()
    gc.unfreeze()
