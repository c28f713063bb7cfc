"""The review page, rendered on the server: the summary strip, the filters, and one page of rows (with the
little script of ``assets/review.js`` and the style of ``assets/review.css``, shipped in the package)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from enrichkit.cache.entry import Entry
from enrichkit.engine.reviewed import as_text
from enrichkit.review.past import Past
from enrichkit.review.session import REVIEWED, Band, FieldConfidence, Session, Summary
from enrichkit.review.table import FLAGS, Query, confidence_of

TRUE = ("1", "on", "true")


def query_of(params: Mapping[str, str], fields: list[str]) -> Query:
    """The ``Query`` a page's address asks for (anything malformed is left out)."""
    below: float | None
    try:
        below = float(params["below"]) if params.get("below") else None
    except ValueError:
        below = None
    try:
        page = max(0, int(params.get("page", "0")))
    except ValueError:
        page = 0
    return Query(
        failed=params.get("failed") in TRUE,
        flagged=params.get("flagged") in TRUE,
        unreviewed=params.get("unreviewed") in TRUE,
        changed=params.get("changed") in TRUE,
        below=below,
        field=params.get("field", ""),
        value=params.get("value", ""),
        search=params.get("q", "").strip(),
        page=page,
    )


def _asset(name: str) -> str:
    return resources.files("enrichkit.review").joinpath("assets", name).read_text(encoding="utf-8")


def render(session: Session, query: Query, token: str, nonce: str, past: Past | None) -> str:
    total, numbers = session.table.page(query)
    reviews = session.reviews(numbers)
    entries = session.entries.of({n: session.table.rows[n] for n in numbers})
    figures = {}
    if session.table.has_confidence:
        figures = session.confidences({n: reviews.get(n) for n in numbers}, entries)
    schemas = {f: session.check.properties[f] for f in session.fields}
    models = {n: _wrote(session, past, n, entries.get(n)) for n in numbers}
    rows = "".join(_row(session, n, reviews.get(n), models[n], past, figures.get(n)) for n in numbers)
    pages = max(1, -(-total // query.size))
    head = "".join(f"<th>{escape(f)}</th>" for f in session.fields)
    conf = "<th>confidence</th>" if session.table.has_confidence else ""
    flags = "<th>flags</th>" if FLAGS in session.table.columns else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>enrichkit review · {escape(session.output.name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="{nonce}">{_asset("review.css")}</style></head>
<body data-token="{escape(token)}" data-schemas="{escape(json.dumps(schemas))}">
<header><h1>enrichkit review <span class="file">{escape(str(session.output))}</span></h1>
{_summary(session.summary())}</header>
{_filters(session, query, token, past)}
<p class="count"><span id="matching">{total:,}</span> rows match · page {query.page + 1} of {pages:,}
{_pager(query, token, pages)} · keys: j/k move, e edit, a accept, r ask again, m ask again on a model,
Esc leave a field</p>
<table id="rows"><thead><tr><th>#</th><th>inputs</th>{head}{conf}{flags}<th>review</th></tr></thead>
<tbody>{rows}</tbody></table>{_choices(session)}{_models(session)}
<script nonce="{nonce}">{_asset("review.js")}</script>
</body></html>
"""


def band_text(band: Band) -> str:
    """A confidence band's accuracy of reviewed rows as the summary strip writes it."""
    right = f"{band.right}/{band.reviewed} right" if band.reviewed else "none reviewed"
    return f"{band.low:.2f} to {band.high:.2f}: {right}"


def _summary(summary: Summary) -> str:
    bands = " ".join(f'<span class="band">{band_text(b)}</span>' for b in summary.bands)
    return (
        f'<p id="summary"><span>{summary.rows:,} rows</span> <span id="reviewed">{summary.reviewed:,} reviewed</span>'
        f' <span id="corrected">{summary.corrected:,} corrected</span>'
        f' <span class="bands">accuracy of reviewed rows by confidence: {bands}</span></p>'
    )


def _filters(session: Session, query: Query, token: str, past: Past | None) -> str:
    def box(name: str, label: str, on: bool) -> str:
        return f'<label><input type="checkbox" name="{name}" value="1"{" checked" if on else ""}> {label}</label>'

    options = "".join(
        f'<option value="{escape(c)}"{" selected" if c == query.field else ""}>{escape(c)}</option>'
        for c in ["", *session.table.columns]
    )
    below = "" if query.below is None else f"{query.below:g}"
    return f"""<form id="filters" method="get" action="/">
<input type="hidden" name="token" value="{escape(token)}">
{box("failed", "failed", query.failed)} {box("flagged", "flagged", query.flagged)}
{box("unreviewed", "not reviewed", query.unreviewed)}{_changed_box(query, past, box)}
<label>confidence below <input name="below" id="below" size="4" value="{below}"></label>
<label>field <select name="field" id="field">{options}</select></label>
<label>is <input name="value" id="value" size="12" value="{escape(query.value)}"></label>
<label>search <input name="q" id="search" size="20" value="{escape(query.search)}"></label>
<button type="submit" id="apply">Filter</button></form>"""


def _changed_box(query: Query, past: Past | None, box: Callable[[str, str, bool], str]) -> str:
    """The filter "changed since the previous run", when there is one (named in its title)."""
    if past is None or past.previous is None:
        return ""
    previous = escape(past.previous.run)
    return (
        f' <span title="than run {previous}">{box("changed", "changed since the previous run", query.changed)}</span>'
    )


def _pager(query: Query, token: str, pages: int) -> str:
    def link(page: int, label: str) -> str:
        params = {k: v for k, v in _params(query).items() if v} | {"token": token, "page": str(page)}
        return f'<a href="/?{escape(urlencode(params))}" id="{label}">{label}</a>'

    parts = []
    if query.page > 0:
        parts.append(link(query.page - 1, "previous"))
    if query.page + 1 < pages:
        parts.append(link(query.page + 1, "next"))
    return " ".join(parts)


def _params(query: Query) -> dict[str, str]:
    return {
        "failed": "1" if query.failed else "",
        "flagged": "1" if query.flagged else "",
        "unreviewed": "1" if query.unreviewed else "",
        "changed": "1" if query.changed else "",
        "below": "" if query.below is None else f"{query.below:g}",
        "field": query.field,
        "value": query.value,
        "q": query.search,
    }


def _kind(session: Session, name: str) -> str:
    """``choice`` for a field with a list of values, else ``text``: the page sizes its input by it."""
    return "choice" if "enum" in session.check.properties[name] else "text"


def _choices_list(session: Session, name: str) -> str:
    return f' list="choices-{escape(name)}"' if "enum" in session.check.properties[name] else ""


def _choices(session: Session) -> str:
    """A list of values for each field that has one (the inputs suggest them)."""
    return "".join(
        f'<datalist id="choices-{escape(name)}">'
        + "".join(f'<option value="{escape(as_text(v))}">' for v in schema["enum"])
        + "</datalist>"
        for name, schema in session.check.properties.items()
        if "enum" in schema
    )


def _models(session: Session) -> str:
    """The models a row may be asked again on (the page suggests them; the server refuses any other)."""
    return '<datalist id="models">' + "".join(f'<option value="{escape(m)}">' for m in session.models) + "</datalist>"


def shown(figure: FieldConfidence) -> str:
    """A field's confidence as the page writes it: two decimals, ``reviewed``, or nothing."""
    return f"{figure:.2f}" if isinstance(figure, float) else figure or ""


def _figure(figure: FieldConfidence) -> str:
    """A field's confidence under its value (the row's ``_confidence`` is its lowest closed field's)."""
    kind = " reviewed" if figure == REVIEWED else ""
    return f'<span class="fconf{kind}" title="the probability the model gave this value">{shown(figure)}</span>'


def _wrote(session: Session, past: Past | None, n: int, entry: Entry | None) -> str | None:
    """The model that wrote row ``n``'s answer, if known (``Past.model``)."""
    if past is None:
        return None
    flags = as_text(session.table.rows[n].get(FLAGS)) if FLAGS in session.table.columns else None
    return past.model(n, session.wrote(n, entry), flags)


def _row(
    session: Session,
    n: int,
    review: Any,
    model: str | None,
    past: Past | None,
    figures: dict[str, FieldConfidence] | None,
) -> str:
    row = session.table.rows[n]
    task = session.task
    label = f"{n + 1}" + (f" <small>{escape(as_text(row.get(task.id_field)))}</small>" if task.id_field else "")
    inputs = "".join(
        f'<div><b>{escape(f)}</b> <span class="value">{escape(as_text(row.get(f)))}</span></div>' for f in task.inputs
    )
    values = session.values(n, review)
    corrected = review.corrected if review else set()
    cells = "".join(
        f'<td class="field {_kind(session, f)}{" corrected" if f in corrected else ""}" data-field="{escape(f)}">'
        f'<input name="{escape(f)}" value="{escape(as_text(values[f]))}" aria-label="{escape(f)}"'
        f"{_choices_list(session, f)}>{'' if figures is None else _figure(figures[f])}"
        '<div class="msg" role="alert"></div></td>'
        for f in session.fields
    )
    conf = ""
    if session.table.has_confidence:
        value = confidence_of(row)
        conf = f'<td class="conf">{"" if value is None else f"{value:.2f}"}</td>'
    flags = f'<td class="flags">{escape(as_text(row.get(FLAGS)))}</td>' if FLAGS in session.table.columns else ""
    state = "asked again" if review and review.again else "corrected" if corrected else ""
    state += f" on {review.model}" if state == "asked again" and review.model else ""
    state = state or ("reviewed" if review and review.values else "")
    told = past.story(n) if past is not None else None
    wrote = f'<div class="model">by <span class="value">{escape(model)}</span></div>' if model else ""
    told_row = (
        f'<tr class="story"><td colspan="99"><details><summary>story</summary><pre>{escape(told)}</pre>'
        "</details></td></tr>"
        if told
        else ""
    )
    version = review.version if review else 0
    kind = "asked-again" if state.startswith("asked again") else state
    return (
        f'<tr class="row {kind}" data-n="{n}" data-version="{version}" tabindex="0">'
        f'<td class="num">{label}</td><td class="inputs">{inputs}{wrote}</td>{cells}{conf}{flags}'
        f'<td class="actions"><button class="accept" type="button">accept</button>'
        f' <button class="again" type="button" title="ask again on the next run (on the model named, if any)">'
        'ask again</button> <input class="model" list="models" size="14" placeholder="on the same model"'
        ' aria-label="the model to ask again on">'
        f' <span class="state">{escape(state)}</span><div class="msg row-msg" role="alert"></div></td></tr>{told_row}'
    )
