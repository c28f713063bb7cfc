"""The disk under enrichkit's outputs: atomic writes, their temp files, and OS errors in one line.

An output is written to a temp file beside it, ``.NAME.enrichkit-RANDOM.part``, and renamed over
it only once complete. The writer holds an exclusive ``flock`` on its temp file while it writes, so
a later run tells a leftover (its writer was killed) from a file another run is still writing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from enrichkit.errors import StorageError, os_cause

if sys.platform != "win32":
    import fcntl

TEMP_MARK = ".enrichkit-"

TEMP_SUFFIX = ".part"

T = TypeVar("T")


def temp_prefix(path: Path) -> str:
    return f".{path.name}{TEMP_MARK}"


@contextmanager
def storage_errors(path: Path) -> Iterator[None]:
    """An ``OSError`` in the block is a ``StorageError`` of one line naming ``path`` and the cause."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ({os_cause(exc)})") from exc


def checked(path: Path, write: Callable[[T], None]) -> Callable[[T], None]:
    """``write`` with its OS errors as a ``StorageError`` naming ``path``."""

    def guarded(items: T) -> None:
        with storage_errors(path):
            write(items)

    return guarded


@contextmanager
def atomic(path: Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """A temp file beside ``path``, renamed over it only when the block ends without error (else removed).

    The file gets the usual permissions (``0o666`` less the umask), not ``mkstemp``'s ``0o600``. OS
    errors of opening, closing and renaming are a ``StorageError``; wrap the writes in ``checked``.
    """
    with storage_errors(path):
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    temp = Path(name)
    out = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
    try:
        with storage_errors(path):
            if sys.platform != "win32":
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.chmod(temp, 0o666 & ~_umask())
        yield out
        with storage_errors(path):
            out.close()
            os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            out.close()
        temp.unlink(missing_ok=True)
        raise


def unwritable(path: Path) -> str | None:
    """Why no file can be made beside ``path`` (read-only file system, permission denied), or None."""
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        return os_cause(exc)
    os.close(fd)
    os.unlink(name)
    return None


def sweep_temps(output: Path) -> int:
    """Delete the temp files killed runs left beside ``output``; how many. A temp file another run is
    still writing (it holds the lock) is kept; so is everything not named like enrichkit's temp files."""
    prefix, swept = temp_prefix(output), 0
    try:
        names = [e.name for e in os.scandir(output.parent) if e.name.startswith(prefix) and e.is_file()]
    except OSError:
        return 0
    for name in names:
        temp = output.parent / name
        if name.endswith(TEMP_SUFFIX) and _abandoned(temp):
            with contextlib.suppress(OSError):
                temp.unlink()
                swept += 1
    return swept


def _abandoned(temp: Path) -> bool:
    if sys.platform == "win32":
        return False  # no flock: cannot tell a leftover from a file being written
    try:
        fd = os.open(temp, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # locked: another run writes it
    finally:
        os.close(fd)
    return True


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (``os.umask`` sets it)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
