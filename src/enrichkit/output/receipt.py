"""The receipt of a run (and of a dry run): a few lines for people, the same figures as JSON."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from enrichkit.calls.prices import price_of
from enrichkit.engine.audit import SIMILAR
from enrichkit.engine.dry_run import DryRun
from enrichkit.result import Stats
from enrichkit.task.task import Task

HINT_BELOW = 0.8

"""A field whose agreement is below this gets a hint in the receipt."""


def audit_text(doc: Mapping[str, Any]) -> str:
    """The receipt's audit line for the report's ``audit``, with a hint when packed answers often disagree."""
    rows, answered = doc["rows"], doc["answered"]
    if not rows:
        return "audit: no row was answered in a pack in this run, none re-asked"
    line = f"audit: {rows:,} row{'s' if rows != 1 else ''} re-asked singly"
    if answered < rows:
        line += f" ({rows - answered:,} gave no valid answer)"
    if not answered:
        return line
    parts = [
        f"{name} {f['agreement']:.0%} agree"
        if f["similarity"] is None
        else f"{name} similarity {f['similarity']:.2f} ({f['agreement']:.0%} ≥ {SIMILAR})"
        for name, f in doc["fields"].items()
    ]
    line += ": " + "; ".join(parts)
    if any(f["agreement"] < HINT_BELOW for f in doc["fields"].values()):
        line += "\nhint: packed answers often differ from the same rows asked alone; a smaller --pack-size may help"
    return line


def costs(model: str, prompt_tokens: int, output_tokens: int) -> dict[str, float] | None:
    """Estimated US$ at the live and the batch price of ``model``; None when its price is unknown."""
    price = price_of(model)
    if price is None:
        return None
    return {
        "live_usd": round(price.cost(prompt_tokens, output_tokens), 6),
        "batch_usd": round(price.cost(prompt_tokens, output_tokens, batch=True), 6),
    }


def run_report(stats: Stats, provider: str, model: str, *, interrupted: bool = False) -> dict[str, Any]:
    report: dict[str, Any] = {"provider": provider, "model": model, **stats.as_dict()}
    done = stats.rows - stats.failed
    report["success_rate"] = round(done / stats.rows, 4) if stats.rows else 1.0
    report["cost"] = {name: costs(name, m.prompt_tokens, m.output_tokens) for name, m in stats.by_model.items()}
    report["interrupted"] = interrupted
    return report


def _usd(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def _cost_text(report: dict[str, Any], provider: str) -> str:
    if provider == "local":
        loaded = report.get("load_seconds")
        return "cost $0 (local model" + (f", loaded in {loaded:.1f} s)" if loaded is not None else ")")
    known = [c for c in report["cost"].values() if c is not None]
    if not report["cost"]:
        return "cost $0"
    if len(known) < len(report["cost"]):
        return "cost unknown (no price for this model; see ENRICHKIT_PRICES)"
    live = _usd(sum(c["live_usd"] for c in known))
    batch = _usd(sum(c["batch_usd"] for c in known))
    if report["mode"] in ("batch", "flex"):
        return f"est. cost {batch} at the {report['mode']} price ({live} live)"
    return f"est. cost {live} (batch price {batch})"


def run_text(report: dict[str, Any]) -> str:
    rows, hits, failed = report["rows"], report["cache_hits"], report["failed"]
    head = "interrupted: " if report["interrupted"] else ""
    lines = [f"stopped: {report['stopped']}"] if report.get("stopped") else []
    lines += [
        f"{head}{rows:,} rows: {hits:,} cache hits, {report['enriched']:,} newly enriched, {failed:,} failed"
        f" ({report['success_rate']:.1%} ok)",
        f"calls: {report['calls']:,} ({_batch_calls(report)}{report['calls_packed']:,} packed,"
        f" {report['calls_single']:,} single,"
        f" {report['calls_fallback']:,} fallback{_repair_calls(report)}{_audit_calls(report)};"
        f" {report['retries']:,} retries)"
        + (" — nothing was sent, every row came from the cache" if report["calls"] == 0 and rows else ""),
        f"tokens: {report['prompt_tokens']:,} in ({report['cached_tokens']:,} cached)"
        f" / {report['output_tokens']:,} out; {_cost_text(report, report['provider'])}; wall {report['seconds']:.1f} s",
    ]
    lines.append(
        f"checks: {report['crosswired']:,} cross-wired answers caught, {report['invalid_items']:,} invalid items,"
        f" {report['unknown_ids']:,} unknown ids (all asked again)"
    )
    if report.get("rate_limit"):
        lines.append(f"rate limit: the server allowed {report['rate_limit']} (learned from its 429s)")
    if report["mode"] == "batch":
        jobs = ", ".join(report["jobs"]) or "none"
        lines.append(
            f"batch: {report['calls_batch']:,} requests answered in jobs {jobs}; {report['pending']:,} rows pending"
        )
    elif report["mode"] == "flex":
        lines.append("flex: every call on Gemini's Flex tier")
    if report["audit"] is not None:
        lines.append(audit_text(report["audit"]))
    if (size := report["pack_size"]) is not None:
        sizes = f"started {size['started']}, ended {size['ended']}, smallest {size['smallest']}"
        lines.append(f"adaptive pack size: {sizes}")
    return "\n".join(lines)


def _batch_calls(report: dict[str, Any]) -> str:
    return f"{report['calls_batch']:,} in batch jobs, " if report["calls_batch"] else ""


def _repair_calls(report: dict[str, Any]) -> str:
    if not report["calls_repair"]:
        return ""
    return f", {report['calls_repair']:,} repairs ({report['repaired']:,} rows mended)"


def _audit_calls(report: dict[str, Any]) -> str:
    return f", {report['calls_audit']:,} audit" if report["calls_audit"] else ""


def dry_run_report(dry: DryRun) -> dict[str, Any]:
    return {
        "dry_run": True,
        "provider": dry.provider,
        "model": dry.model,
        "rows": dry.rows,
        "cache_hits": dry.cache_hits,
        "duplicates": dry.duplicates,
        "rows_to_send": dry.to_send,
        "calls": dry.calls,
        "pack_sizes": sorted(set(dry.packs), reverse=True),
        "prompt_tokens": dry.prompt_tokens,
        "output_tokens": dry.output_tokens,
        "tokens": "counted by the model on one pack, scaled" if dry.tokens_counted else "estimated (4 chars/token)",
        "cost": None if dry.provider == "local" else costs(dry.model, dry.prompt_tokens, dry.output_tokens),
    }


def dry_run_text(report: dict[str, Any]) -> str:
    lines = [
        f"dry run — nothing sent. {report['rows']:,} rows: {report['cache_hits']:,} cache hits,"
        f" {report['duplicates']:,} in-run duplicates, {report['rows_to_send']:,} to send",
        f"calls: {report['calls']:,} packed calls (pack sizes {report['pack_sizes'] or [0]})",
        f"tokens: ~{report['prompt_tokens']:,} in / ~{report['output_tokens']:,} out ({report['tokens']})",
    ]
    cost = report["cost"]
    if report["provider"] == "local":
        lines.append("cost: $0 (local model)")
    elif cost is None:
        lines.append(f"cost: unknown (no price for {report['model']}; see ENRICHKIT_PRICES)")
    else:
        lines.append(f"est. cost: {_usd(cost['live_usd'])} live ({_usd(cost['batch_usd'])} at the batch price)")
    return "\n".join(lines)


TOP_REASONS = 3

# What varies from row to row in a failure reason, so that rows failing the same way count together.
_VARYING = [
    (re.compile(r"has \d+ words, more than (\d+)"), r"more than \1 words"),
    (
        re.compile(  # "field: <the value's repr> is ..."
            r"^([\w.\[\]-]+: )(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\[.*?\]|\{.*?\}|[-+\w.]+)"
            r" (is |does not |not in )"
        ),
        r"\1value \2",
    ),
    (re.compile(r"^echo .*? is not the row's .*?: "), "echo is not the row's: "),
    (re.compile(r"^id \S+ answered \d+ times"), "an id answered more than once"),
    (re.compile(r" at character \d+"), ""),
]


def reason_kind(reason: str) -> str:
    """A failure reason without the row's own values: ``tldr: has 14 words, more than 12`` is
    ``tldr: more than 12 words``, ``challenge: 'hard' not in [...]`` is ``challenge: value not in [...]``."""
    for pattern, replacement in _VARYING:
        reason = pattern.sub(replacement, reason)
    return reason


def count_reasons(reasons: Iterable[str]) -> Counter[str]:
    return Counter(reason_kind(reason) for reason in reasons)


def failures_report(reasons: Counter[str], path: Path | None) -> dict[str, Any]:
    """The receipt's failure fields: every reason kind with its rows, most first; the failures file."""
    return {"failure_reasons": dict(reasons.most_common()), "failures_file": str(path) if path else None}


def failures_text(report: dict[str, Any]) -> str:
    """The top failure reasons with their row counts, and where the failed rows are (empty if none)."""
    reasons: dict[str, int] = report["failure_reasons"]
    if not reasons:
        return ""
    top = list(reasons.items())[:TOP_REASONS]
    width = len(f"{top[0][1]:,}")
    more = f" (top {TOP_REASONS} of {len(reasons)})" if len(reasons) > TOP_REASONS else ""
    lines = [f"failed rows by reason{more}:", *(f"  {n:>{width},} × {reason}" for reason, n in top)]  # noqa: RUF001
    where = report["failures_file"]
    lines.append(
        f"failed rows with their inputs and reasons: {where}"
        if where
        else "failed rows: not kept (--failures FILE keeps them)"
    )
    return "\n".join(lines)


PREVIEW_CHARS = 48


def preview_text(rows: Sequence[Mapping[str, Any]], task: Task) -> str:
    """The first rows of the output as a small table: the row's id (or first input) and the new columns."""
    key = task.id_field or task.inputs[0]
    columns = [key, *task.fields]

    def cell(value: Any) -> str:
        text = "" if value is None else str(value).replace("\n", " ")
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"

    table = [columns, *([cell(row.get(c)) for c in columns] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table]
    return "\n".join([f"first {len(rows)} rows:", *lines])
