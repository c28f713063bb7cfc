"""The receipt of a run (and of a dry run): a few lines for people, the same figures as JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from enrichkit.calls.prices import cost_of
from enrichkit.engine.audit import SIMILAR
from enrichkit.engine.confidence import LOW
from enrichkit.engine.dry_run import DryRun, FieldPlan
from enrichkit.engine.reasons import reason_kind
from enrichkit.result import BANDS, NO_CONFIDENCE, UNKNOWN_COST, Confidence, Cost, Stats, counted, usd

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
    return _prices(cost_of(model, prompt_tokens, output_tokens))


def _prices(cost: Cost | None) -> dict[str, float] | None:
    return None if cost is None or cost.free else {"live_usd": cost.live_usd, "batch_usd": cost.batch_usd}


def run_report(stats: Stats, provider: str, model: str, *, interrupted: bool = False) -> dict[str, Any]:
    report: dict[str, Any] = {"provider": provider, "model": model, **stats.as_dict()}
    done = stats.rows - stats.failed - stats.pending
    report["success_rate"] = round(done / stats.rows, 4) if stats.rows else 1.0
    report["cost"] = {name: costs(name, m.prompt_tokens, m.output_tokens) for name, m in stats.by_model.items()}
    report["interrupted"] = interrupted or stats.interrupted
    if stats.confidence is not None:
        summary = stats.confidence
        report["confidence"] |= {"median": summary.median, "below": {str(LOW): summary.below(LOW)}}
    return report


def confidence_text(doc: Mapping[str, Any]) -> list[str]:
    """The receipt's confidence lines: median and rows below ``LOW``, rows without one, flags, models giving none."""
    summary = Confidence(doc["rows"], doc["without"], doc["bins"], doc["flags"], doc["no_logprobs"])
    answered = summary.rows + summary.without
    if summary.rows:
        line = (
            f"confidence: median {summary.median:.2f}, {summary.below(LOW):,} of {counted(answered, 'row')} below {LOW}"
        )
        if doc["measured_by"] == "agreement":
            line += " (1.0: two packings agree, 0.5: they differ)"
        if summary.without:
            line += f" ({summary.without:,} without one)"
    elif answered:
        line = f"confidence: none (no closed field or no token log-probabilities) for {counted(answered, 'row')}"
    else:
        line = "confidence: no answered rows"
    lines = [line]
    if doc["by_agreement"]:
        lines.append(f"confidence: {doc['by_agreement']}")
    if summary.flags:
        lines.append("flags: " + ", ".join(f"{n:,} {flag}" for flag, n in sorted(summary.flags.items())))
    if summary.no_logprobs:
        lines.append(
            f"log-probabilities: {', '.join(summary.no_logprobs)} gives none (its rows have no confidence;"
            " remembered in the cache folder, not asked again)"
        )
    return lines


def escalation_text(doc: Mapping[str, Any]) -> str:
    """The cascade's line: rows escalated, answers changed, calls and cost."""
    cost = doc["cost"]
    price = UNKNOWN_COST if cost is None else str(Cost(**cost))
    return (
        f"escalated: {counted(doc['rows'], 'row')} below {doc['below']:g} to {doc['model']},"
        f" {doc['changed']:,} answers changed ({doc['answered']:,} answered, the others kept);"
        f" {counted(doc['calls'], 'call')}, {doc['prompt_tokens']:,} in / {doc['output_tokens']:,} out, {price}"
        + (
            f"; {counted(doc['waiting'], 'row')} waiting in a batch job (re-run to collect)"
            if doc.get("waiting")
            else ""
        )
    )


def known_text(known: Mapping[str, Any]) -> list[str]:
    """Per field checked against known answers: how many match, overall and per confidence band."""
    lines = []
    for name, doc in known.items():
        rows, matched = doc["rows"], doc["matched"]
        share = f" ({matched / rows:.0%})" if rows else ""
        order = [name for _, name in BANDS] + [NO_CONFIDENCE]
        bands = "; ".join(f"{b} {doc['bands'][b][0]:,}/{doc['bands'][b][1]:,}" for b in order if b in doc["bands"])
        lines.append(
            f"known answers: {name} {matched:,}/{rows:,} match {doc['column']}{share}"
            + (f"; by confidence: {bands}" if len(doc["bands"]) > 1 else "")
        )
    return lines


def run_text(report: dict[str, Any]) -> str:
    rows, hits, failed = report["rows"], report["cache_hits"], report["failed"]
    head = "interrupted: " if report["interrupted"] else ""
    lines = [f"stopped: {report['stopped']}"] if report.get("stopped") and not report["interrupted"] else []
    pending = report["pending"]
    waiting = f"{pending:,} submitted and waiting in batch jobs, " if pending else ""
    not_asked = f"{report['not_asked']:,} not asked; " if report.get("not_asked") else ""
    rate = f"{report['success_rate']:.1%} done so far" if pending else f"{report['success_rate']:.1%} ok"
    partly = f" ({_partly(report.get('partly_cached', 0))})" if report.get("partly_cached") else ""
    lines += [
        f"{head}{counted(rows, 'row')}: {counted(hits, 'cache hit')}, {report['enriched']:,} newly enriched{partly},"
        f" {waiting}{failed:,} failed ({not_asked}{rate})",
        f"calls: {report['calls']:,} ({_batch_calls(report)}{report['calls_packed']:,} packed,"
        f" {report['calls_single']:,} single,"
        f" {report['calls_fallback']:,} fallback{_repair_calls(report)}{_audit_calls(report)};"
        f" {report['retries']:,} retries)"
        + (" — nothing was sent, every row came from the cache" if report["calls"] == 0 and rows == hits else ""),
        f"tokens: {report['prompt_tokens']:,} in ({report['cached_tokens']:,} cached)"
        f" / {report['output_tokens']:,} out; {_cost_text(report)}; wall {report['seconds']:.1f} s",
    ]
    lines.append(
        f"checks: {report['crosswired']:,} cross-wired answers caught, {report['invalid_items']:,} invalid items,"
        f" {report['unknown_ids']:,} unknown ids (all asked again)"
    )
    if reviewed := report.get("reviewed"):
        lines.append(f"reviewed: {counted(reviewed, 'reviewed value')} kept (a person's, served instead of a model's)")
    if damaged := report.get("damaged"):
        entries = "entry" if damaged == 1 else "entries"
        lines.append(f"cache: {damaged:,} damaged cache {entries} asked again (undecodable, or not fitting the schema)")
    if report.get("rate_limit"):
        lines.append(f"rate limit: the server allowed {report['rate_limit']} (learned from its 429s)")
    if report["mode"] == "batch":
        lines.append(batch_text(report))
    elif report["mode"] == "flex":
        lines.append("flex: every call on Gemini's Flex tier")
    if report["audit"] is not None:
        lines.append(audit_text(report["audit"]))
    if report.get("confidence") is not None:
        lines += confidence_text(report["confidence"])
    if debiased := report.get("debiased"):
        lines.append(
            f"debias: {counted(debiased['answers'], 'answer')} chosen with the local model's lean to some values"
            f" taken out; {debiased['turned']:,} of them other than its own first choice"
        )
    if report.get("escalation") is not None:
        lines.append(escalation_text(report["escalation"]))
    lines += known_text(report.get("known") or {})
    if report.get("hint"):
        lines.append(f"hint: {report['hint']}")
    if (size := report["pack_size"]) is not None:
        sizes = f"started {size['started']}, ended {size['ended']}, smallest {size['smallest']}"
        lines.append(f"adaptive pack size: {sizes}")
    return "\n".join(lines)


def batch_text(report: dict[str, Any]) -> str:
    """The batch line: the requests submitted by model and rung, in which jobs; rows pending, rows finished live."""
    rungs = report["batch_rungs"]
    sent = sum(r["requests"] for r in rungs)
    parts = [
        f"{r['requests']:,} packs of up to {r['size']} on {r['model']} ({r['rows']:,} rows)"
        if r["size"] > 1
        else f"{r['requests']:,} single rows on {r['model']}"
        for r in rungs
    ]
    jobs = report["jobs"]
    count = f"{len(jobs):,} job{'s' if len(jobs) != 1 else ''}"
    line = f"batch: {sent:,} requests in {count}: {', '.join(parts)}" if sent else f"batch: re-attached to {count}"
    line += f"; {report['calls_batch']:,} answered; {report['pending']:,} rows pending"
    if jobs and report["pending"]:
        line += f" in {', '.join(jobs)}"
    if report["finished_live"]:
        line += f"; {report['finished_live']:,} rows finished live at the live price"
    if report["interrupted"] and report["pending"]:
        line += "\nthe jobs keep their rows: Ctrl-C is safe, re-run the same command to re-attach"
    return line


def _cost_text(report: dict[str, Any]) -> str:
    cost = report["est_cost"]
    text = UNKNOWN_COST if cost is None else str(Cost(**cost))
    if report["pending"]:  # a job's tokens are known once it is collected
        text += f" so far (the {counted(report['pending'], 'row')} in batch jobs are counted when collected)"
    loaded, pid = report.get("load_seconds"), report.get("served_by")  # a local model's
    if pid is not None:
        text += f", model served by enrichkit serve (pid {pid})"
        return text if loaded is None else f"{text} until it stopped, then loaded in {loaded:.1f} s"
    return text if loaded is None else f"{text}, model loaded in {loaded:.1f} s"


def _batch_calls(report: dict[str, Any]) -> str:
    return f"{report['calls_batch']:,} in batch jobs, " if report["calls_batch"] else ""


def _repair_calls(report: dict[str, Any]) -> str:
    if not report["calls_repair"]:
        return ""
    return f", {report['calls_repair']:,} repairs ({report['repaired']:,} rows mended)"


def _audit_calls(report: dict[str, Any]) -> str:
    audit = f", {report['calls_audit']:,} audit" if report["calls_audit"] else ""
    return audit + (f", {report['calls_agreement']:,} agreement" if report.get("calls_agreement") else "")


def dry_run_report(dry: DryRun) -> dict[str, Any]:
    media = {} if dry.media is None else dict(zip(("media", "media_tokens", "media_failed"), dry.media, strict=True))
    return media | {
        "dry_run": True,
        "provider": dry.provider,
        "model": dry.model,
        "rows": dry.rows,
        "cache_hits": dry.cache_hits,
        "duplicates": dry.duplicates,
        "rows_to_send": dry.to_send,
        "partly_cached": dry.partly_cached,
        "calls": dry.calls,
        "calls_packed": sum(size > 1 for size in dry.packs),
        "calls_single": dry.packs.count(1),
        "pack_sizes": sorted(set(dry.packs), reverse=True),
        "prompt_tokens": dry.prompt_tokens,
        "output_tokens": dry.output_tokens,
        "tokens": "counted by the model on one pack, scaled" if dry.tokens_counted else "estimated (4 chars/token)",
        "cost": _prices(dry.cost),
        "agreement": dry.agreement,
        "fields": [{"name": f.name, "cached": f.cached, "to_ask": f.to_ask, "why": f.why or None} for f in dry.fields],
        "since_run": dry.since,
        "escalation": None if (up := dry.escalation) is None else asdict(up) | {"cost": _prices(up.cost)},
    }


def dry_run_text(report: dict[str, Any]) -> str:
    lines = [
        f"dry run — nothing sent. {counted(report['rows'], 'row')}: {counted(report['cache_hits'], 'cache hit')},"
        f" {report['duplicates']:,} in-run duplicates, {report['rows_to_send']:,} to send"
        + (f" ({_partly(report['partly_cached'])})" if report.get("partly_cached") else ""),
        f"calls: {_planned_calls(report)}",
        f"tokens: ~{report['prompt_tokens']:,} in / ~{report['output_tokens']:,} out ({report['tokens']})",
    ]
    if fields := report.get("fields"):
        since = f" (since run {report['since_run']})" if report.get("since_run") else ""
        lines.append(f"fields{since}:")
        lines += [f"  {FieldPlan(f['name'], f['cached'], f['to_ask'], f['why'] or '')}" for f in fields]
    if "media" in report:
        lines.append(
            f"media: {report['media']:,} images and documents to send (~{report['media_tokens']:,} of the"
            f" tokens in); {counted(report['media_failed'], 'row')} whose media cannot be sent fail"
        )
    if report.get("agreement"):
        lines.append(
            "confidence: every row asked twice, in other packs (the model gives no token log-probabilities):"
            " the calls and tokens count both (an escalation is priced on its own line)"
        )
    if (up := report.get("escalation")) is not None:
        lines.append(escalation_plan_text(up))
    cost = report["cost"]
    if report["provider"] == "local":
        lines.append("cost: $0 (local model)")
    elif cost is None:
        lines.append(f"cost: unknown (no price for {report['model']}; see ENRICHKIT_PRICES)")
    else:
        lines.append(f"est. cost: {usd(cost['live_usd'])} live ({usd(cost['batch_usd'])} at the batch price)")
    return "\n".join(lines)


def escalation_plan_text(plan: Mapping[str, Any]) -> str:
    """A dry run's escalation: the most it may ask (which rows fall below the threshold is known once answered)."""
    cost = plan["cost"]
    if plan["model"].startswith("local:"):
        price = "$0 (local model)"
    elif cost is None:
        price = "cost unknown (no price for this model)"
    else:
        price = f"≤ {usd(cost['live_usd'])} live (≤ {usd(cost['batch_usd'])} at the batch price)"
    return (
        f"escalation: up to {counted(plan['rows'], 'row')} on {plan['model']} (those whose confidence falls below"
        f" {plan['below']:g}, known once answered), ~{plan['prompt_tokens']:,} in / ~{plan['output_tokens']:,} out,"
        f" {price}; not in the figures above"
    )


def _partly(rows: int) -> str:
    return f"{rows:,} asked for new or changed fields only, their others cached"


def _planned_calls(report: dict[str, Any]) -> str:
    """A dry run's calls: packs (several rows a call, with their sizes) and single calls (one row a call)."""
    packed, single = report["calls_packed"], report["calls_single"]
    sizes = [size for size in report["pack_sizes"] if size > 1]
    if packed and single:
        return f"{report['calls']:,}: {packed:,} packed (pack sizes {sizes}), {single:,} single"
    if packed:
        return f"{counted(packed, 'packed call')} (pack sizes {sizes})"
    if single:
        return f"{counted(single, 'single call')} (one row each)"
    return "none"


TOP_REASONS = 3


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
