"""What every ``enrichkit`` command shares: one-line errors, -q/-v, and the cache and endpoint options."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from enrichkit.errors import EnrichkitError

F = TypeVar("F", bound=Callable[..., Any])
USAGE_ERROR = 2


def guarded(command: F) -> F:
    """Errors of the user's making: one line on stderr and exit 2 (the traceback only with -v)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = kwargs.get("verbose", False)
        try:
            code = command(*args, **kwargs)
        except EnrichkitError as exc:
            if verbose:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            sys.exit(USAGE_ERROR)
        sys.exit(code or 0)

    return wrapper  # type: ignore[return-value]


def quiet_verbose(command: F) -> F:
    command = click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of errors.")(command)
    return click.option("-q", "--quiet", is_flag=True, help="No progress bar, header or receipt.")(command)


CACHE_DIR = click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="ENRICHKIT_CACHE_DIR",
    help="Default ./cache.",
)
BASE_URL = click.option("--base-url", envvar="ENRICHKIT_BASE_URL", help="API endpoint (a proxy or a test server).")
