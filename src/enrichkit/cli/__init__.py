"""The ``enrichkit`` command: a thin click shell over the library (``runner`` runs the job; see ``enrichkit.api``)."""

from __future__ import annotations

import click

from enrichkit.cli import cache, diff, jobs, logs, review, run, runs, scrape, task
from enrichkit.cli.common import Main


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="enrichkit")
def main() -> None:
    """Enrich rows of data with columns written by an LLM: cached per row, many rows per call, validated."""


main.add_command(run.run)
main.add_command(scrape.scrape)
main.add_command(cache.cache)
main.add_command(jobs.jobs)
main.add_command(task.task)
main.add_command(runs.runs)
main.add_command(diff.diff)
main.add_command(logs.logs)
main.add_command(review.review)
