"""Real damaged disks for the tests: read-only and tiny file systems (mounted when we may), a size limit."""

from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted(target: Path, *args: str) -> Iterator[Path]:
    """``mount ARGS target`` for the block; skips the test where mounting is not allowed."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip() or done.returncode})")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only: a read-only bind mount as root (chmod does not stop root), else chmod."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    with mounted(folder, "--bind", "-o", "ro", str(folder)):
        yield folder


@contextmanager
def tiny_disk(target: Path, size: str = "256k") -> Iterator[Path]:
    """A file system of ``size`` at ``target`` (a tmpfs): writes beyond it fail with ENOSPC."""
    with mounted(target, "-t", "tmpfs", "-o", f"size={size}", "tmpfs"):
        yield target


def file_size_limit(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` for a child process that may write no file beyond ``limit`` bytes (EFBIG;
    Python ignores SIGXFSZ). Works without root, unlike a full disk."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
