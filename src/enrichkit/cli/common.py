"""What every ``enrichkit`` command shares: one-line errors, -q/-v, SIGTERM as Ctrl-C, and the cache
and endpoint options."""

from __future__ import annotations

import contextlib
import functools
import importlib
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from enrichkit.cli import collector
from enrichkit.errors import EnrichkitError
from enrichkit.history.files import HistoryWarning

F = TypeVar("F", bound=Callable[..., Any])
USAGE_ERROR = 2
INTERRUPTED = 130


class Main(click.Group):
    """The ``enrichkit`` group: click's usage errors as one line ``error: ...`` (exit 2), and SIGTERM
    handled like Ctrl-C while a command runs (temp files removed, the receipt printed). The ``lazy``
    commands are imported when asked for (command ``NAME`` of module ``enrichkit.cli.NAME``): a run
    does not load the others."""

    def __init__(self, *args: Any, lazy: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = tuple(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name != "run":
            collector.started()  # a run's start-up goes on until its context is open (``runner.run_job``)
        return name, command, rest

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(getattr(importlib.import_module(f"enrichkit.cli.{cmd_name}"), cmd_name))
        return self.commands.get(cmd_name)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        warnings.formatwarning = one_line_warning
        with sigterm_as_interrupt():
            try:
                code = super().main(args, prog_name, complete_var, False, **extra)
            except click.exceptions.NoArgsIsHelpError as exc:
                exc.show()
                sys.exit(exc.exit_code)
            except click.ClickException as exc:
                click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
                sys.exit(exc.exit_code)
            except click.Abort:  # Ctrl-C outside a run
                click.echo("interrupted", err=True)
                sys.exit(INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


_format_warning = warnings.formatwarning


def one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """A warning of the run history or call log as one line (others as Python shows them)."""
    if issubclass(category, HistoryWarning):
        return f"warning: {message}\n"
    return _format_warning(message, category, filename, lineno, line)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """In the block, a first SIGTERM does what Ctrl-C does (a second one kills as usual).

    Python dies of SIGTERM without unwinding, leaving temp files behind; as a ``KeyboardInterrupt``
    every ``finally`` runs. The SIGINT handler in force is called (asyncio's cancels its main task).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, previous)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    show_envvar=True,
    help="Where answers are cached (default ./cache).",
)
CACHE = click.option(
    "--cache",
    metavar="URL",
    help="A Redis server many machines share (redis://host:6379/0, enrichkit[redis]): the cache, one rate"
    " limit and in-flight leases for every run that names it (default: the folder --cache-dir).",
)
BASE_URL = click.option(
    "--base-url",
    envvar="ENRICHKIT_BASE_URL",
    show_envvar=True,
    help="API endpoint (a proxy, a test server, an OpenAI-compatible server).",
)
MODEL = click.option(
    "-m",
    "--model",
    envvar="ENRICHKIT_MODEL",
    show_envvar=True,
    help="Model name (default: gemini-3.1-flash-lite, or the embedded local model); on the local provider"
    " a GGUF file's path or name (qwen2.5-coder-1.5b, smollm2-135m, a file in ~/.cache/enrichkit/models).",
)
