"""``enrichkit scrape roadmap``: a scraper plugin for enrichkit, and the worked example of one.

enrichkit finds ``command`` through this package's entry point (``pyproject.toml``)::

    [project.entry-points."enrichkit.scrapers"]
    roadmap = "enrichkit_roadmap:command"

``scraper_command`` gives it ``-o``, ``--enrich`` and every option of an enrich run; the function only returns the
rows (``scrape.scrape_roadmap``, which knows roadmap.sh and nothing of enrichkit's run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from enrichkit.cli.scrape import scraper_command
from enrichkit_roadmap.scrape import scrape_roadmap

__all__ = ["command", "scrape_roadmap"]

EXAMPLES = """Examples:

\b
  enrichkit scrape roadmap engineering-manager -o rows.jsonl
  enrichkit scrape roadmap backend --from developer-roadmap/src/data/roadmaps --enrich task.json -o out.csv
"""


@scraper_command("roadmap", epilog=EXAMPLES)
@click.argument("name")
@click.option(
    "--from",
    "source",
    type=click.Path(path_type=Path, file_okay=False),
    help="A local roadmap folder (default: fetch from GitHub).",
)
def command(name: str, source: Path | None) -> list[dict[str, Any]]:
    """A roadmap.sh roadmap NAME (e.g. engineering-manager): one row per topic, keyed by node id."""
    return scrape_roadmap(name, source)
