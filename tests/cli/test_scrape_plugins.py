"""``enrichkit scrape``'s plugins: scrapers that installed packages register under the entry points
``enrichkit.scrapers``, looked up only when needed, and ``scraper_command``, which plugin authors build them with."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import click
import pytest

from enrichkit.cli import scrape
from enrichkit.cli.scrape import ENTRY_POINTS, scraper_command
from enrichkit.errors import UserError
from enrichkit.testing import GeminiStub
from helpers import TASK, invoke, read_jsonl, topic_rows


@scraper_command()
@click.argument("count", type=int)
@click.option("--prefix", default="t", help="Id prefix.")
def topics(count: int, prefix: str) -> Iterator[dict[str, Any]]:
    """COUNT synthetic topics."""
    if count == 0:
        raise UserError("no topics to scrape (COUNT is 0)")
    yield from topic_rows(count, prefix)


NOT_A_COMMAND = "not a command"


def plugins(monkeypatch: pytest.MonkeyPatch, **values: str | list[str]) -> None:
    """Installed scrapers: the entry points `name=value` (a list: the same name registered more than once)."""
    found = [
        EntryPoint(name, value, ENTRY_POINTS)
        for name, given in values.items()
        for value in ([given] if isinstance(given, str) else given)
    ]

    def entry_points(group: str) -> list[EntryPoint]:
        assert group == ENTRY_POINTS
        return found

    monkeypatch.setattr(scrape, "entry_points", entry_points)


def listing() -> dict[str, str]:
    """``enrichkit scrape --help``'s commands: name -> short help."""
    result = invoke(None, "scrape", "--help")
    assert result.exit_code == 0, result.output
    commands = result.output.split("Commands:\n", 1)[1].splitlines()
    return {name: text for name, text in (line.split(maxsplit=1) for line in commands if line.strip())}


def test_a_plugin_is_a_scrape_subcommand_with_the_enrich_options(
    monkeypatch: pytest.MonkeyPatch, stub: GeminiStub, tmp_path: Path
) -> None:
    plugins(monkeypatch, topics=f"{__name__}:topics")
    assert listing()["topics"] == "COUNT synthetic topics."
    plain = tmp_path / "plain.jsonl"
    result = invoke(None, "scrape", "topics", "3", "--prefix", "p", "-o", str(plain))
    assert result.exit_code == 0, result.output
    assert read_jsonl(plain) == topic_rows(3, "p")
    out = tmp_path / "out.jsonl"
    result = invoke(stub, "scrape", "topics", "4", "--enrich", TASK, "-o", str(out), "--no-cache", "--limit", "3")
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in read_jsonl(out)] == ["t0", "t1", "t2"] and all("tldr" in r for r in read_jsonl(out))


def test_a_plugins_user_error_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    plugins(monkeypatch, topics=f"{__name__}:topics")
    result = invoke(None, "scrape", "topics", "0", "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2 and result.stderr == "error: no topics to scrape (COUNT is 0)\n"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("no_such_plugin_module:command", "cannot load (ModuleNotFoundError: No module named 'no_such_plugin_module')"),
        (f"{__name__}:missing", f"cannot load (AttributeError: module '{__name__}' has no attribute 'missing')"),
        (f"{__name__}:NOT_A_COMMAND", "not a click command but a str"),
        ([f"{__name__}:topics", "other_plugin:command"], "registered by more than one package (uninstall all but one)"),
    ],
)
def test_a_plugin_that_does_not_load_is_one_line_naming_it_and_the_help_still_works(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | list[str], reason: str
) -> None:
    plugins(monkeypatch, broken=value)
    result = invoke(None, "scrape", "broken", "x", "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: scraper 'broken' from a package (") and result.stderr.count("\n") == 1
    assert result.stderr.endswith(f"): {reason}\n") and "Traceback" not in result.stderr
    commands = listing()
    assert commands["broken"].startswith(f"unusable: {reason[:30]}")
    assert commands["json"].startswith("Rows from the array")
    assert not (tmp_path / "out.jsonl").exists()


def test_plugins_are_looked_up_only_when_a_scrape_subcommand_needs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry_points(group: str) -> list[EntryPoint]:
        raise AssertionError("entry points read")

    monkeypatch.setattr(scrape, "entry_points", entry_points)
    assert invoke(None, "--help").exit_code == 0
    assert invoke(None, "scrape", "json", "--help").exit_code == 0
    with pytest.raises(AssertionError, match="entry points read"):
        invoke(None, "scrape", "--help")


def test_unknown_scrapers_are_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins(monkeypatch)
    result = invoke(None, "scrape", "nothing", "-o", "out.jsonl")
    assert result.exit_code == 2 and result.stderr == "error: No such command 'nothing'.\n"


def test_a_plugin_cannot_take_a_flag_of_the_enrich_options() -> None:
    with pytest.raises(TypeError, match=r"scraper 'clash': --limit, -o, limit already taken"):

        @scraper_command("clash")
        @click.option("-o", "--limit", "limit", type=int)
        def clash(limit: int) -> list[dict[str, Any]]:
            return []


def test_the_roadmap_example_is_installed_as_a_plugin() -> None:
    assert listing()["roadmap"].startswith("A roadmap.sh roadmap NAME")
