"""Free text in a script that neither the row nor the task uses is refused on every provider and asked
again, as any invalid answer is; a row written in that script may be answered in it."""

from __future__ import annotations

from pathlib import Path

from enrichkit import Task
from enrichkit.engine.validation import foreign_script
from enrichkit.testing import scripted, set_field
from helpers import generated, run_at_seam, topic_rows


def test_a_summary_with_chinese_in_it_is_repaired_with_the_reason(task: Task, cache_dir: Path) -> None:
    script = scripted(set_field(None, "tldr", "A battery lasting two days, with客服响应."))  # the first answer
    result = run_at_seam(topic_rows(1), task, script, cache_dir)
    assert result.failures == [] and "客" not in result.rows[0]["tldr"]
    repair = generated(script)[1].prompt
    assert "'tldr' has HAN script, which neither the record nor the task uses" in repair
    assert (result.stats.invalid_items, result.stats.repaired) == (1, 1)


def test_a_row_in_chinese_may_be_answered_in_chinese(task: Task, cache_dir: Path) -> None:
    rows = topic_rows(2)
    rows[0]["description"] = "关于电池的主题"
    script = scripted(rules=[set_field(None, "tldr", "电池")])
    result = run_at_seam(rows, task, script, cache_dir, pack_size=1)
    assert result.rows[0]["tldr"] == "电池" and [f.row_id for f in result.failures] == ["t1"]
    assert "HAN script" in result.failures[0].reason


def test_without_letters_to_go_by_nothing_is_refused() -> None:
    assert foreign_script({"t": "电池"}, ["t"], {"n": 42}, frozenset()) is None
    assert foreign_script({"t": "电池 battery"}, ["t"], {"n": "电池"}, frozenset({"LATIN"})) is None
