"""``python -m enrichkit`` and the ``enrichkit`` console script: the command, then an exit that skips the
interpreter's teardown once nothing is left for it to do.

The teardown frees every module's objects one by one (the provider SDK's thousand-odd classes among them):
0.1-0.2 s of CPU after a run whose output, cache, call log and receipt are already written and closed. It
is skipped (``os._exit``) only when it could change nothing outside the process: no tracer or profiler runs
(coverage, cProfile, a debugger: they write their findings after the program), no thread but this one is
left to wait for, the ``atexit`` handlers have run, stdout and stderr are flushed, and every file descriptor
open is one the process was started with (so no file, database, socket or pipe it opened is left to flush or
close). Otherwise the interpreter exits as usual.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

Descriptors = frozenset[tuple[int, int, int]]


def main() -> None:
    """Run the ``enrichkit`` command with the process's arguments, and exit with its code (click's
    ``SystemExit``)."""
    inherited = open_descriptors()  # before enrichkit's modules load: whatever they open is the command's
    from enrichkit.cli import collector
    from enrichkit.cli import main as command

    collector.pause()  # for the command's start-up (``enrichkit.cli.collector``)
    try:
        command()
    except SystemExit as stop:
        if inherited is not None and (stop.code is None or isinstance(stop.code, int)):
            leave(stop.code or 0, inherited)
        raise
    finally:
        collector.restore()  # the usual exit's collections see every object, as without the pause


def leave(code: int, inherited: Descriptors) -> None:
    """Exit with ``code`` without the interpreter's teardown, if it would change nothing outside the process;
    else return (and the interpreter exits as usual)."""
    if watched():
        return
    if any(thread is not threading.main_thread() and not thread.daemon for thread in threading.enumerate()):
        return  # the usual exit waits for it
    atexit._run_exitfuncs()  # and forgets them: the usual exit does not run them twice
    try:
        for stream in {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__}:
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return  # the usual exit reports it (a closed pipe, a full disk)
    if (now := open_descriptors()) is None or not now <= inherited:
        return  # something the process opened is open still: the usual exit closes it
    os._exit(code)


def watched() -> bool:
    """Whether a tracer, profiler or monitoring tool (Python 3.12's ``sys.monitoring``) is set."""
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)
    return monitoring is not None and any(monitoring.get_tool(tool) is not None for tool in range(6))


def open_descriptors() -> Descriptors | None:
    """The file descriptors open in this process, each with its file's device and inode (None: the system does
    not list them)."""
    for listing in ("/proc/self/fd", "/dev/fd"):
        try:
            folder = os.open(listing, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            found = set()
            for name in os.listdir(folder):
                if (fd := int(name)) != folder:
                    try:
                        status = os.fstat(fd)
                    except OSError:  # closed since it was listed
                        continue
                    found.add((fd, status.st_dev, status.st_ino))
            return frozenset(found)
        finally:
            os.close(folder)
    return None


if __name__ == "__main__":
    main()
