"""A diff as the command line shows it: a text table, JSON, or an HTML page with bar charts (plain HTML and
CSS, no script)."""

from __future__ import annotations

import html
import json
from typing import Any

from enrichkit.output.diff import Diff, FieldDiff, Side
from enrichkit.result import usd

CUT = 60  # characters of a value shown in an example


def side_doc(side: Side) -> dict[str, Any]:
    run = side.run
    doc: dict[str, Any] = {"source": side.label, "rows": side.rows, "answered": len(side.answered)}
    doc["failed"] = len(side.failed)
    if run is not None:
        doc |= {"run": run.run, "provider": run.provider, "model": run.model, "calls": run.counts.get("calls")}
        doc |= {"cost_usd": run.cost_usd, "cost": run.cost}
    return doc


def diff_doc(d: Diff, fail_above: float | None = None) -> dict[str, Any]:
    """The diff as JSON."""
    fields = {}
    for f in d.fields:
        doc: dict[str, Any] = {"compared": f.compared, "changed": f.changed, "share": round(f.share, 4)}
        doc["examples"] = [{"id": rid, "a": before, "b": after} for rid, before, after in f.examples]
        if f.before is not None and f.after is not None:
            doc["distribution"] = {v: {"a": f.before[v], "b": f.after[v]} for v in f.values}
        fields[f.name] = doc
    out: dict[str, Any] = {
        "a": side_doc(d.a),
        "b": side_doc(d.b),
        "rows": {
            "added": d.added,
            "removed": d.removed,
            "failed_in_a_only": d.failed_in_a,
            "failed_in_b_only": d.failed_in_b,
            "failed_in_both": d.failed_in_both,
        },
        "fields": fields,
        "fields_only_in_a": d.only_in_a,
        "fields_only_in_b": d.only_in_b,
    }
    if fail_above is not None:
        out["fail_above"] = fail_above
        out["over"] = [f.name for f in d.over(fail_above)]
    return out


def _cost(side: Side) -> str:
    run = side.run
    if run is None:
        return "cost unknown (not a run of the history)"
    calls = run.counts.get("calls", 0)
    paid = run.cost if run.cost_usd is None else usd(run.cost_usd)
    return f"{calls:,} calls, {paid}"


def _cut(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = json.dumps(text, ensure_ascii=False)
    return text if len(text) <= CUT else text[: CUT - 1] + "…"


def _ids(ids: list[str], most: int = 8) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f" … (+{len(ids) - most:,})" if len(ids) > most else "")


def diff_text(d: Diff, fail_above: float | None = None) -> str:
    lines = [
        f"A: {d.a.label} · {d.a.rows:,} rows · {_cost(d.a)}",
        f"B: {d.b.label} · {d.b.rows:,} rows · {_cost(d.b)}",
        f"rows: {len(d.added):,} added · {len(d.removed):,} removed · failed in A only {len(d.failed_in_a):,}"
        f" · in B only {len(d.failed_in_b):,} · in both {d.failed_in_both:,}",
    ]
    for name, ids in (("added", d.added), ("removed", d.removed)):
        if ids:
            lines.append(f"  {name}: {_ids(ids)}")
    for name, ids in (("failed in A only", d.failed_in_a), ("failed in B only", d.failed_in_b)):
        if ids:
            lines.append(f"  {name}: {_ids(ids)}")
    if d.only_in_a or d.only_in_b:
        lines.append(f"fields only in A: {', '.join(d.only_in_a) or '-'} · only in B: {', '.join(d.only_in_b) or '-'}")
    width = max([5, *(len(f.name) for f in d.fields)])
    lines.append(f"{'field':<{width}}  {'changed':>16}  {'share':>6}")
    for f in d.fields:
        over = "  over --fail-above" if fail_above is not None and f.share > fail_above else ""
        lines.append(f"{f.name:<{width}}  {f'{f.changed:,} of {f.compared:,}':>16}  {f.share:>6.1%}{over}")
    for f in d.fields:
        for rid, before, after in f.examples:
            lines.append(f"  {f.name} {rid}: {_cut(before)} → {_cut(after)}")
    for f in d.fields:
        if f.before is None or f.after is None:
            continue
        w = max([5, *(len(v) for v in f.values)])
        lines.append(f"{f.name}: {'value':<{w}}  {'A':>6}  {'B':>6}")
        pad = " " * (len(f.name) + 2)
        lines += [f"{pad}{v:<{w}}  {f.before[v]:>6,}  {f.after[v]:>6,}" for v in f.values]
    return "\n".join(lines)


_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}
td,th{padding:.2em .6em;text-align:left;border-bottom:1px solid #ddd}td.n{text-align:right}
.bar{height:.9em;display:inline-block;vertical-align:middle}.a{background:#8aa4c8}.b{background:#e0955a}
.over{color:#b00;font-weight:bold}"""


def _bars(f: FieldDiff) -> str:
    assert f.before is not None and f.after is not None
    top = max([1, *f.before.values(), *f.after.values()])
    rows = []
    for v in f.values:
        a, b = f.before[v], f.after[v]
        bar_a = f"<span class='bar a' style='width:{200 * a / top:.0f}px'></span>"
        bar_b = f"<span class='bar b' style='width:{200 * b / top:.0f}px'></span>"
        cells = f"<td class=n>{a:,}</td><td>{bar_a}</td><td class=n>{b:,}</td><td>{bar_b}</td>"
        rows.append(f"<tr><td>{html.escape(v)}</td>{cells}</tr>")
    head = "<tr><th>value</th><th>A</th><th></th><th>B</th><th></th></tr>"
    return f"<h3>{html.escape(f.name)}</h3><table>{head}{''.join(rows)}</table>"


def diff_html(d: Diff, fail_above: float | None = None) -> str:
    """The diff as a page: the sides, the rows, a table of fields, examples, and a bar chart per closed field."""
    e = html.escape
    sides = "".join(
        f"<tr><th>{name}</th><td>{e(s.label)}</td><td class=n>{s.rows:,}</td><td>{e(_cost(s))}</td></tr>"
        for name, s in (("A", d.a), ("B", d.b))
    )
    counts = [
        ("added", len(d.added)),
        ("removed", len(d.removed)),
        ("failed in A only", len(d.failed_in_a)),
        ("failed in B only", len(d.failed_in_b)),
        ("failed in both", d.failed_in_both),
    ]
    rows = "".join(f"<tr><td>{n}</td><td class=n>{c:,}</td></tr>" for n, c in counts)
    fields = "".join(
        f"<tr{' class=over' if fail_above is not None and f.share > fail_above else ''}><td>{e(f.name)}</td>"
        f"<td class=n>{f.changed:,} of {f.compared:,}</td><td class=n>{f.share:.1%}</td></tr>"
        for f in d.fields
    )
    examples = "".join(
        f"<tr><td>{e(f.name)}</td><td>{e(rid)}</td><td>{e(_cut(a))}</td><td>{e(_cut(b))}</td></tr>"
        for f in d.fields
        for rid, a, b in f.examples
    )
    charts = "".join(_bars(f) for f in d.fields if f.before is not None)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>enrichkit diff</title><style>{_STYLE}</style>"
        f"</head><body><h1>enrichkit diff</h1><table><tr><th></th><th>source</th><th>rows</th><th>cost</th></tr>"
        f"{sides}</table><h2>Rows</h2><table>{rows}</table><h2>Fields</h2><table><tr><th>field</th><th>changed"
        f"</th><th>share</th></tr>{fields}</table><h2>Examples</h2><table><tr><th>field</th><th>id</th><th>A</th>"
        f"<th>B</th></tr>{examples}</table><h2>Closed fields</h2>{charts or '<p>none</p>'}</body></html>\n"
    )
