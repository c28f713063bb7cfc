"""Run history, call log and diff through the provider seam (``FunctionProvider``) and the CLI in-process."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from enrichkit import Task
from enrichkit.cli import main
from enrichkit.errors import FatalProviderError
from enrichkit.history.files import HistoryWarning
from enrichkit.history.runs import RunHistory, options_of
from enrichkit.options import RunOptions
from enrichkit.testing import scripted
from enrichkit.testing.faults import http_error, set_field
from helpers import run_at_seam, topic_rows

GOOGLE_KEY = "AIza" + "Sy" + "q" * 33  # made here: nothing committed looks like a real key
OPENAI_KEY = "sk-proj-" + "w" * 24
CONFIGURED = "a-configured-gemini-key-0123"

CHANGED = {"t3", "t8", "t21", "t30"}  # the rows the second run answers differently


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def reworded(task: Task) -> Task:
    """The task with another instruction: a new cache key, every row asked again."""
    return dataclasses.replace(task, instruction=task.instruction + " Be brief.", output=task.schema)


def topic_in(ids: set[str]) -> Any:
    numbers = {f"Topic number {i[1:]}" for i in ids}
    return lambda record: record.get("topic") in numbers


def two_runs(task: Task, cache_dir: Path) -> None:
    rows = topic_rows(34)
    run_at_seam(rows, task, scripted(), cache_dir)
    changed = scripted(rules=[set_field(topic_in(CHANGED), "tldr", "A different summary.")])
    run_at_seam(rows, reworded(task), changed, cache_dir)


def test_diff_of_two_runs_names_exactly_the_rows_answered_differently(task: Task, cache_dir: Path) -> None:
    two_runs(task, cache_dir)
    shown = cli("diff", "last~1", "last", "--json", "--cache-dir", str(cache_dir))
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    tldr = report["fields"]["tldr"]
    assert (tldr["compared"], tldr["changed"]) == (34, len(CHANGED))
    assert {e["id"] for e in tldr["examples"]} <= CHANGED and len(tldr["examples"]) == min(5, len(CHANGED))
    assert all(e["b"] == "A different summary." for e in tldr["examples"])
    assert report["fields"]["challenge"]["changed"] == 0
    spread = report["fields"]["challenge"]["distribution"]
    assert sum(v["a"] for v in spread.values()) == 34 and all(v["a"] == v["b"] for v in spread.values())
    assert report["rows"] == {
        "added": [], "removed": [], "failed_in_a_only": [], "failed_in_b_only": [], "failed_in_both": 0
    }  # fmt: skip
    assert report["a"]["calls"] == 2 and report["b"]["calls"] == 2  # ⌈34/20⌉ packs each
    share = len(CHANGED) / 34  # 11.8 %
    gate = cli("diff", "last~1", "last", "--fail-above", "0.1", "--cache-dir", str(cache_dir))
    assert gate.exit_code == 1 and "tldr 11.8%" in gate.stderr
    assert cli("diff", "last~1", "last", "--fail-above", f"{share:.3f}", "--cache-dir", str(cache_dir)).exit_code == 0


def test_diff_counts_rows_added_removed_and_failed_on_one_side(task: Task, cache_dir: Path, tmp_path: Path) -> None:
    run_at_seam(topic_rows(10), task, scripted(), cache_dir)
    bad = scripted(rules=[set_field(topic_in({"t2"}), "challenge", "?")])
    run_at_seam(topic_rows(12)[1:], reworded(task), bad, cache_dir)
    page = tmp_path / "diff.html"
    shown = cli("diff", "last~1", "last", "--cache-dir", str(cache_dir), "--html", str(page))
    assert shown.exit_code == 0
    assert "1 added" not in shown.output and "2 added · 1 removed · failed in A only 0 · in B only 1" in shown.output
    assert "  added: t10, t11\n  removed: t0\n  failed in B only: t2" in shown.output
    text = page.read_text()
    assert "<h3>challenge</h3>" in text and "class='bar a'" in text and "<script" not in text


def test_a_rows_story_runs_and_logs(task: Task, cache_dir: Path) -> None:
    script = scripted(rules=[set_field(topic_in({"t4"}), "challenge", "?")])  # t4 is never valid
    result = run_at_seam(topic_rows(25), task, script, cache_dir)
    assert [f.row_id for f in result.failures] == ["t4"]
    runs = cli("runs", "--cache-dir", str(cache_dir))
    assert "25 rows · 0 cached · 24 enriched · 1 failed" in runs.output
    [record] = [json.loads(line) for line in cli("runs", "--json", "--cache-dir", str(cache_dir)).output.splitlines()]
    assert record["counts"]["calls"] == result.stats.calls and record["task"]["name"] == "roadmap-topic"
    assert list(record["field_fingerprints"]) == task.fields and len(record["key_fingerprint"]) == 64
    assert record["answers"] == 25 and record["logged"]
    story = cli("logs", "--row", "t4", "--json", "-n", "0", "--cache-dir", str(cache_dir)).output.splitlines()
    calls = [json.loads(line) for line in story]
    carried = [a for a in script.calls if a.action == "generate" and '"Topic number 4"' in a.prompt]
    assert len(calls) == len(carried) == result.failures[0].attempts  # every call that carried it, no other
    assert calls[0]["kind"] == "packed" and {c["kind"] for c in calls[1:]} <= {"single", "repair"}
    assert all(c["run"] == record["run"] for c in calls)
    shown = cli("logs", "--row", "t4", "--cache-dir", str(cache_dir)).output
    assert shown.count("t4 → no answer: challenge: '?' not in [practice, expert]") == len(calls)
    assert "rung 20  20 rows" in shown and "rung 1  1 row " in shown
    prompts = cli("logs", "--run", "last", "--prompts", "-n", "1", "--cache-dir", str(cache_dir)).output
    assert "  system:\n" in prompts and "  prompt:\n" in prompts and "  answer:\n" in prompts


def test_the_log_keeps_the_order_of_runs_started_in_the_same_second(task: Task, cache_dir: Path) -> None:
    """A run id says the second its run started, then random characters: two runs of one second (a script
    running them back to back) are told apart by their first call, not by the random part."""
    two_runs(task, cache_dir)
    folder = cache_dir / "history" / "calls"
    first, second = sorted(folder.glob("*.jsonl"), key=lambda p: json.loads(p.read_text().splitlines()[-1])["at"])
    first.rename(folder / "20261207-093820-ffff.jsonl")  # the earlier run's random part sorts last
    second.rename(folder / "20261207-093820-0000.jsonl")
    shown = cli("logs", "--json", "-n", "0", "--cache-dir", str(cache_dir)).output.splitlines()
    runs = [json.loads(line)["run"] for line in shown]
    assert runs == [first.stem] * 2 + [second.stem] * 2  # two packs a run, the earlier run's first


def test_the_log_never_holds_an_api_key(task: Task, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", CONFIGURED)
    rows = topic_rows(6)
    rows[1]["description"] = f"pasted by mistake: {GOOGLE_KEY} and {CONFIGURED}"
    echoed = f"API key {OPENAI_KEY} / {GOOGLE_KEY} / {CONFIGURED} not valid for this call"
    script = scripted(http_error(400, echoed), rules=[set_field(topic_in({"t2"}), "tldr", f"leaked {OPENAI_KEY}")])
    run_at_seam(rows, task, script, cache_dir, pack_size=3)
    history = [path for path in (cache_dir / "history").rglob("*") if path.is_file()]
    texts = [(gzip.decompress if p.suffix == ".gz" else bytes)(p.read_bytes()).decode("latin-1") for p in history]
    assert len(texts) == 3 and not [t for t in texts if GOOGLE_KEY in t or OPENAI_KEY in t or CONFIGURED in t]
    log = cli("logs", "--run", "last", "--prompts", "-n", "0", "--cache-dir", str(cache_dir)).output
    assert "pasted by mistake: [redacted] and [redacted]" in log and "leaked [redacted]" in log
    assert "API key [redacted] / [redacted] / [redacted] not valid" in log
    assert all(p.stat().st_mode & 0o077 == 0 for p in (cache_dir / "history").rglob("*"))  # owner only


def test_no_log_logs_nothing_and_prune_drops_logs(task: Task, cache_dir: Path) -> None:
    run_at_seam(topic_rows(5), task, scripted(), cache_dir, log=False)
    assert not (cache_dir / "history" / "calls").exists()
    run_at_seam(topic_rows(5), reworded(task), scripted(), cache_dir)
    assert len(list((cache_dir / "history" / "calls").glob("*.jsonl"))) == 1
    assert [r.logged for r in RunHistory(cache_dir).runs()] == [True, False]
    pruned = cli("cache", "prune", "--older-than", "0s", "--cache-dir", str(cache_dir))
    assert "deleted the call logs of 1 runs" in pruned.output
    assert not list((cache_dir / "history").rglob("*.jsonl.gz")) and len(RunHistory(cache_dir).runs()) == 2


def test_a_damaged_history_is_skipped_with_a_warning(task: Task, cache_dir: Path) -> None:
    run_at_seam(topic_rows(5), task, scripted(), cache_dir)
    history = cache_dir / "history" / "runs.jsonl"
    with history.open("ab") as out:
        out.write(b'{"run": "cut sh\n\x00\xff garbage\n')
    [segment] = (cache_dir / "history" / "calls").glob("*.jsonl")
    segment.write_bytes(segment.read_bytes()[:-40])  # the last line cut short
    with pytest.warns(HistoryWarning, match="2 damaged lines skipped"):
        assert len(RunHistory(cache_dir).runs()) == 1
    run_at_seam(topic_rows(5), reworded(task), scripted(), cache_dir)  # appends after the damage
    with pytest.warns(HistoryWarning):
        assert len(RunHistory(cache_dir).runs()) == 2
    with pytest.warns(HistoryWarning, match="1 damaged line skipped"):
        logs = CliRunner().invoke(main, ["logs", "-n", "0", "--cache-dir", str(cache_dir)])
    assert logs.exit_code == 0 and len(logs.output.splitlines()) == 1  # the first run's one call is cut


def test_a_history_that_cannot_be_written_never_fails_the_run(task: Task, cache_dir: Path) -> None:
    cache_dir.mkdir()
    (cache_dir / "history").write_text("a file where the folder goes")
    with pytest.warns(HistoryWarning, match="cannot"):
        result = run_at_seam(topic_rows(5), task, scripted(), cache_dir)
    assert result.stats.enriched == 5 and not result.failures


def test_a_refused_key_is_logged_and_recorded_without_the_key(
    task: Task, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", CONFIGURED)
    script = scripted(rules=[http_error(401, f"API key not valid: {CONFIGURED}")])
    with pytest.raises(FatalProviderError):
        run_at_seam(topic_rows(5), task, script, cache_dir)
    [run] = RunHistory(cache_dir).runs()
    assert run.counts == {} and "API key not valid: [redacted]" in run.stopped  # no result: no counts known
    assert "no result" in cli("runs", "--cache-dir", str(cache_dir)).output
    [call] = [json.loads(line) for line in cli("logs", "--json", "--cache-dir", str(cache_dir)).output.splitlines()]
    assert call["outcome"] == "error" and "FatalProviderError" in call["error"] and call["rows"] == list(ROWS_5)
    texts = [path.read_text() for path in (cache_dir / "history").rglob("*.jsonl")]
    assert texts and not [t for t in texts if CONFIGURED in t]


ROWS_5 = ("t0", "t1", "t2", "t3", "t4")


def test_a_redis_password_never_reaches_the_history() -> None:
    options = RunOptions(cache="redis://:hunter2-secret@localhost:6379/0")
    assert options_of(options)["cache"] == "redis://:[redacted]@localhost:6379/0"
