"""The ``enrichkit`` command: a thin click shell over the library (``runner`` runs the job; see ``enrichkit.api``)."""

from __future__ import annotations

import click

from enrichkit.cli.common import Main

COMMANDS = ("run", "scrape", "cache", "jobs", "task", "runs", "diff", "logs", "review", "serve")
"""Each one ``NAME`` in module ``enrichkit.cli.NAME``, imported when it is asked for."""


@click.group(cls=Main, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="enrichkit")
def main() -> None:
    """Enrich rows of data with columns written by an LLM: cached per row, many rows per call, validated."""
