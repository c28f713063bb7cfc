"""DataFrames in and out (pandas, polars, pyarrow) against the Gemini stub, and the result's repr."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from google import genai

from enrichkit import EnrichResult, Task, UserError, dry_run, enrich
from enrichkit.testing import GeminiStub, set_field
from helpers import FAST_RETRY

TASK = Task.from_columns(
    "Classify each review",
    "text",
    ["sentiment: positive|negative|neutral", "summary: text, at most 10 words", "ok: yes/no", "n: integer"],
)
REVIEWS = ["Great value", "Broke at once", "It is fine", "Would buy again"]


def reviews() -> pd.DataFrame:
    return pd.DataFrame({"text": REVIEWS, "stars": [5, 1, 3, 4]}, index=[40, 10, 30, 20])


def run(data: Any, stub: GeminiStub, client: genai.Client, cache_dir: Path) -> EnrichResult:
    """Enrich ``data``; the second review stays invalid and fails."""
    stub.rule(set_field(lambda rec: rec["text"] == REVIEWS[1], "sentiment", "angry"))
    return enrich(data, TASK, client=client, cache_dir=cache_dir, retry=FAST_RETRY)


def test_pandas_keeps_index_columns_and_order_and_types_the_new_columns(
    stub: GeminiStub, client: genai.Client, cache_dir: Path
) -> None:
    source = reviews()
    result = run(source, stub, client, cache_dir)
    out = result.frame
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == [40, 10, 30, 20] and list(out.columns) == [
        "text",
        "stars",
        *TASK.fields,
        "_confidence",
        "_flags",
    ]
    pd.testing.assert_frame_equal(out[["text", "stars"]], source)
    assert source.columns.tolist() == ["text", "stars"]  # the input is not changed
    assert str(out["ok"].dtype) == "boolean" and str(out["n"].dtype) == "Int64"
    assert out["sentiment"].isna().tolist() == [False, True, False, False]
    assert out.loc[10, "n"] is pd.NA and out.loc[40, "sentiment"] in ("positive", "negative", "neutral")
    assert result.to_pandas() is out
    failures = result.failures_frame()
    assert isinstance(failures, pd.DataFrame)
    assert failures.to_dict("records") == [
        {
            "id": 1,
            "reason": "sentiment: 'angry' not in [positive, negative, neutral]",
            "attempts": 4,  # the pack, the row alone, two repairs
            "text": REVIEWS[1],
        }
    ]


def test_polars_round_trip(stub: GeminiStub, client: genai.Client, cache_dir: Path) -> None:
    source = pl.from_pandas(reviews())
    result = run(source, stub, client, cache_dir)
    out = result.frame
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["text", "stars", *TASK.fields, "_confidence", "_flags"]
    assert out["text"].to_list() == REVIEWS
    assert out.schema["ok"] == pl.Boolean and out.schema["n"] == pl.Int64 and out.schema["summary"] == pl.String
    assert [out[name][1] for name in TASK.fields] == [None] * 4  # the failed row
    assert isinstance(result.failures_frame(), pl.DataFrame) and result.failures_frame()["id"].to_list() == [1]
    assert str(result.to_pandas()["n"].dtype) == "Int64"


def test_pyarrow_round_trip(stub: GeminiStub, client: genai.Client, cache_dir: Path) -> None:
    source = pa.Table.from_pandas(reviews(), preserve_index=False)
    result = run(source, stub, client, cache_dir)
    out = result.frame
    assert isinstance(out, pa.Table)
    assert out.column_names == ["text", "stars", *TASK.fields, "_confidence", "_flags"]
    assert out.select(["text", "stars"]).equals(source)
    assert out.schema.field("n").type == pa.int64() and out.schema.field("ok").type == pa.bool_()
    assert out.column("sentiment").null_count == 1 and out.column("sentiment")[1].as_py() is None
    assert isinstance(result.failures_frame("polars"), pl.DataFrame)


def test_a_rerun_on_the_enriched_frame_hits_the_cache(stub: GeminiStub, client: genai.Client, cache_dir: Path) -> None:
    first = enrich(reviews(), TASK, client=client, cache_dir=cache_dir)
    again = enrich(first.frame, TASK, client=client, cache_dir=cache_dir)
    assert again.stats.cache_hits == 4 and again.stats.calls == 0
    pd.testing.assert_frame_equal(again.frame, first.frame)


def test_dicts_are_unchanged_and_to_pandas_and_failures_frame_work_on_them(
    stub: GeminiStub, client: genai.Client, cache_dir: Path
) -> None:
    rows = [{"text": t} for t in REVIEWS]
    result = run(rows, stub, client, cache_dir)
    assert result.frame is None and isinstance(result.rows, list) and "sentiment" not in result.rows[1]
    frame = result.to_pandas()
    assert (
        frame.columns.tolist() == ["text", *TASK.fields, "_confidence", "_flags"]
        and frame["sentiment"].isna().sum() == 1
    )
    assert result.failures_frame()["id"].tolist() == [1]


def test_dry_run_reads_a_frame(stub: GeminiStub, client: genai.Client, cache_dir: Path) -> None:
    plan = dry_run(pl.from_pandas(reviews()), TASK, client=client, cache_dir=cache_dir)
    assert plan.rows == 4 and plan.to_send == 4 and not stub.generate_calls


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"reviews.csv", "rows: a bytes is not accepted; pass an iterable of dicts, a pandas or polars DataFrame"),
        ("no-such-reviews.csv", "no-such-reviews.csv: no such file"),
        ({"text": "one row"}, "rows: a dict is not accepted"),
        (pl.DataFrame({"text": REVIEWS}).lazy(), r"a polars.LazyFrame is not accepted.*collect a lazy frame first"),
        (pd.Series(REVIEWS), "a pandas.Series is not accepted"),
        (["Great value"], "row 1: a str is not a row"),
    ],
)
def test_a_wrong_type_is_one_line(data: Any, message: str, client: genai.Client, cache_dir: Path) -> None:
    with pytest.raises(UserError, match=message) as info:
        enrich(data, TASK, client=client, cache_dir=cache_dir)
    assert "\n" not in str(info.value)


def test_enrich_inside_a_running_event_loop_like_a_notebook(
    stub: GeminiStub, client: genai.Client, cache_dir: Path
) -> None:
    async def cell() -> EnrichResult:
        asyncio.get_running_loop()  # a notebook cell runs inside the kernel's loop
        return enrich(reviews(), TASK, client=client, cache_dir=cache_dir)

    result = asyncio.run(cell())
    assert result.stats.enriched == 4 and list(result.frame.index) == [40, 10, 30, 20]


def test_the_repr_is_a_short_summary(stub: GeminiStub, client: genai.Client, cache_dir: Path) -> None:
    text = repr(run(reviews(), stub, client, cache_dir))
    lines = text.splitlines()
    assert lines[0] == "EnrichResult: 4 rows · 0 from the cache · 3 newly enriched · 1 failed"
    assert lines[1].startswith("calls: 4 (1 packed, 1 single, 2 repair, 0 fallback, 0 batch) · tokens: ")
    assert lines[2] == "frame: pandas.DataFrame"
    assert lines[3] == "first failure: row 1: sentiment: 'angry' not in [positive, negative, neutral]"
    assert " · est. cost $0.0" in lines[1] and "(batch price $0.0" in lines[1] and len(lines) == 4
