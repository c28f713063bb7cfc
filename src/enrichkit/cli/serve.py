"""``enrichkit serve``: the local model kept loaded between runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from enrichkit.cli.common import guarded, quiet_verbose
from enrichkit.cli.flags import duration

if TYPE_CHECKING:
    from enrichkit.providers.local.served import Served


@click.command()
@click.option(
    "-m",
    "--model",
    help="A GGUF file's path or name, as `run --provider local --model` takes it (default: the embedded model).",
)
@click.option(
    "--slots", type=click.IntRange(min=1), help="Rows decoded together (default: one a core, as a run would)."
)
@click.option(
    "--idle",
    callback=duration,
    help="Stop once no run has asked anything for this long (e.g. 30m; default: only Ctrl-C or SIGTERM).",
)
@quiet_verbose
@guarded
def serve(model: str | None, slots: int | None, idle: float | None, quiet: bool, **_: Any) -> int:
    """Keep a local model loaded until Ctrl-C, for every run on this machine that uses it.

    A run of `--provider local` on the same model then skips the load (a second or two) and the grammar's
    first set-up (most of a second); its receipt says "model served by enrichkit serve". A run that gives
    other `--concurrency` slots loads its own. The model stays in memory while this runs."""
    from enrichkit.providers.local.provider import local_provider

    def ready(served: Served, seconds: float) -> None:
        if not quiet:
            click.echo(
                f"serving {model or 'the embedded model'} on {served.slots} slots at {served.address}"
                f" (pid {served.pid}, ready in {seconds:.1f} s); Ctrl-C stops it"
                + (f", as does {idle:g} s without a request" if idle else ""),
                err=True,
            )

    idled = local_provider(model=model, slots=slots).serve(ready, idle)
    if not quiet:
        click.echo(f"stopped: no request for {idle:g} s" if idled else "stopped", err=True)
    return 0
