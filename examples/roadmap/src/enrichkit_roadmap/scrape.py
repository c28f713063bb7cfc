"""Rows from a roadmap.sh roadmap (github.com/kamranahmedse/developer-roadmap), from a local folder or over HTTP.

A roadmap folder holds ``<name>.json``, the editor diagram (``nodes`` and ``edges``), and one markdown file per
clickable node, ``content/<slug>@<nodeId>.md``. Each ``topic``, ``subtopic`` or ``todo`` node with a label gives a
row, in diagram order, whose category is read from the layout (``_categories``). Content files that match no such
node (all of them when the diagram is missing or in another format) then give a row each, in file-name order, with
a null category and node type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx2

from enrichkit.errors import UserError
from enrichkit.rows.files import decode, load_json

RAW_BASE = "https://raw.githubusercontent.com/kamranahmedse/developer-roadmap/master/src/data/roadmaps"
CONTENTS_API = (
    "https://api.github.com/repos/kamranahmedse/developer-roadmap/contents/src/data/roadmaps/{name}/content?ref=master"
)
TIMEOUT = 30.0
ROW_TYPES = ("topic", "subtopic", "todo")
HEADING_TYPES = ("label", "topic")
STACK_GAP = 12.0

Row = dict[str, Any]
Fetch = Callable[[str], bytes]

_ATX_H1 = re.compile(r"#[ \t]+(.*?)(?:[ \t]+#+)?")
_SETEXT = re.compile(r"=+|-+")
_NOT_PROSE = re.compile(
    r"([-*+]|\d+[.)])(\s|$)|#{1,6}(\s|$)|```|~~~|<[A-Za-z!/?]|[|>]|!\[|([-*_]\s*){3,}$|visit the following",
    re.IGNORECASE,
)
_BOLD_ONLY = re.compile(r"(\*\*|__)[^*_]+\1:?")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_BOLD = re.compile(r"(\*\*|__)(.+?)\1")


class NotFound(UserError):
    """A fetched URL answered 404; ``fetch`` functions raise it for a file that does not exist."""


def scrape_roadmap(name: str, source: Path | None = None, *, fetch: Fetch | None = None) -> list[Row]:
    """Rows of roadmap `name`, from the local folder `source` (which holds `<name>.json` and `content/`; accept either
    the roadmap folder itself or its parent) or, when source is None, over HTTP from RAW_BASE.

    ``fetch`` (url -> bytes, raising ``NotFound`` on 404) replaces the HTTP client.
    """
    if not re.fullmatch(r"\w[\w.-]*", name):
        raise UserError(f"{name!r}: not a roadmap name (expected a folder name such as 'backend')")
    if source is not None:
        diagram, texts = _read_folder(name, Path(source))
    elif fetch is not None:
        diagram, texts = _download(name, fetch)
    else:
        with httpx2.Client(timeout=TIMEOUT, follow_redirects=True) as client:
            diagram, texts = _download(name, partial(_http_get, client))
    return _rows(name, diagram, texts)


# Reading


def _read_folder(name: str, source: Path) -> tuple[Any, dict[str, str]]:
    """The parsed diagram (None if absent) and the content texts by file name, from the folder at or in `source`."""
    folder = source / name if (source / name).is_dir() else source
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    diagram_path, content = folder / f"{name}.json", folder / "content"
    if not diagram_path.is_file() and not content.is_dir():
        raise UserError(f"{folder}: neither {name}.json nor a content/ folder is there")
    diagram = _parse_json(_read(diagram_path), str(diagram_path)) if diagram_path.is_file() else None
    paths = content.iterdir() if content.is_dir() else []
    return diagram, {p.name: decode(_read(p), str(p)) for p in paths if p.is_file() and _is_content(p.name)}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None


def _download(name: str, fetch: Fetch) -> tuple[Any, dict[str, str]]:
    """Like ``_read_folder``, over HTTP: the raw diagram, and the content files listed by the GitHub contents API."""
    diagram_url, listing_url = f"{RAW_BASE}/{name}/{name}.json", CONTENTS_API.format(name=name)
    diagram_data, listing_data = _fetch_optional(fetch, diagram_url), _fetch_optional(fetch, listing_url)
    if diagram_data is None and listing_data is None:
        raise UserError(f"{diagram_url}: no such roadmap (neither the diagram nor a content folder exists)")
    diagram = None if diagram_data is None else _parse_json(diagram_data, diagram_url)
    files = [] if listing_data is None else _listing(listing_data, listing_url)
    return diagram, {file: decode(fetch(url), url) for file, url in files if _is_content(file)}


def _fetch_optional(fetch: Fetch, url: str) -> bytes | None:
    try:
        return fetch(url)
    except NotFound:
        return None


def _listing(data: bytes, url: str) -> list[tuple[str, str]]:
    """(file name, download URL) of each file in a GitHub contents API answer."""
    entries = _parse_json(data, url)
    if not isinstance(entries, list):
        raise UserError(f"{url}: expected a JSON array of files, found {type(entries).__name__}")
    return [
        (entry["name"], entry["download_url"])
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("download_url"), str)
    ]


def _http_get(client: httpx2.Client, url: str) -> bytes:
    try:
        response = client.get(url)
    except httpx2.HTTPError as exc:
        raise UserError(f"{url}: cannot fetch ({type(exc).__name__}: {exc})") from None
    if response.status_code == 404:
        raise NotFound(f"{url}: HTTP 404 (not found)")
    if response.status_code != 200:
        raise UserError(f"{url}: HTTP {response.status_code}")
    return response.content


def _parse_json(data: bytes, origin: str) -> Any:
    return load_json(decode(data, origin), origin)


def _is_content(file: str) -> bool:
    """A node's markdown file, not an ``index.md`` or ``dummy`` placeholder."""
    return file.endswith(".md") and file[:-3].lower() not in ("index", "dummy")


# Rows


@dataclass(frozen=True)
class _Doc:
    """One content file: path relative to the roadmaps folder, name slug, H1 and first prose paragraph."""

    path: str
    slug: str
    title: str | None
    description: str
    size: int


def _rows(name: str, diagram: Any, texts: Mapping[str, str]) -> list[Row]:
    """A row per labelled row node (first of a repeated id), then one per id of the files no node claimed."""
    docs = _documents(name, texts)
    nodes, edges = _diagram(diagram)
    categories = _categories(nodes, edges)
    rows: dict[str, Row] = {}
    for box in nodes:
        if box.type in ROW_TYPES and box.label and box.id not in rows:
            group = docs.pop(box.id, None)
            doc = _pick(group, box.label) if group else None
            rows[box.id] = _row(name, box.id, categories.get(box.id), box.label, doc, box.type)
    for node_id, group in docs.items():
        doc = _pick(group, None)
        rows[node_id] = _row(name, node_id, None, doc.title or doc.slug, doc, None)
    return list(rows.values())


def _row(name: str, node_id: str, category: str | None, topic: str, doc: _Doc | None, node_type: str | None) -> Row:
    return {
        "roadmap": name,
        "id": f"{name}:{node_id}",
        "category": category,
        "topic": topic,
        "content_title": doc.title if doc else None,
        "description": doc.description if doc else "",
        "node_type": node_type,
        "content_file": doc.path if doc else None,
    }


def _documents(name: str, texts: Mapping[str, str]) -> dict[str, list[_Doc]]:
    """The parsed content files by the node id in their name (the whole stem without ``@``), in file-name order."""
    docs: dict[str, list[_Doc]] = {}
    for file in sorted(texts):
        slug, at, node_id = file[:-3].rpartition("@")
        title, description = _parse_markdown(texts[file])
        size = len(texts[file].encode())
        doc = _Doc(f"{name}/content/{file}", slug if at else node_id, title, description, size)
        docs.setdefault(node_id, []).append(doc)
    return docs


def _pick(docs: list[_Doc], label: str | None) -> _Doc:
    """Of the files for one id, the one named after `label` (after its own H1 if None), else the largest."""
    for doc in docs:
        if doc.slug == _slugify((doc.title or "") if label is None else label):
            return doc
    return max(docs, key=lambda doc: doc.size)


def _slugify(text: str) -> str:
    """The file-name slug roadmap.sh derives from a label: ``"Date & Time"`` -> ``"date--time"``."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


# Markdown


def _parse_markdown(text: str) -> tuple[str | None, str]:
    """The H1 (ATX or setext, on the first non-blank line) and the first prose paragraph, cleaned to plain text."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    first = lines[start].strip() if start < len(lines) else ""
    if match := _ATX_H1.fullmatch(first):
        title, body = _collapse(match.group(1)), lines[start + 1 :]
    elif start + 1 < len(lines) and _SETEXT.fullmatch(lines[start + 1].strip()):
        title, body = _collapse(first), lines[start + 2 :]
    else:
        title, body = None, lines
    paragraph = next((block for block in _blocks(body) if _is_prose(block)), "")
    return title, _clean(paragraph)


def _blocks(lines: list[str]) -> Iterator[str]:
    """Runs of non-blank lines joined by spaces; a fenced code block stays in one run, blank lines and all."""
    block: list[str] = []
    fence = ""
    for line in lines:
        text = line.strip()
        if fence or text:
            block.append(text)
        elif block:
            yield " ".join(block)
            block = []
        if fence and text.startswith(fence):
            fence = ""
        elif not fence and text.startswith(("```", "~~~")):
            fence = text[:3]
    if block:
        yield " ".join(block)


def _is_prose(block: str) -> bool:
    """Not a list, code, HTML, table, quote, image, heading, rule, bold-only caption or resources line."""
    return not _NOT_PROSE.match(block) and not _BOLD_ONLY.fullmatch(block)


def _clean(text: str) -> str:
    """Links reduced to their text; images, HTML tags and bold markers dropped; whitespace collapsed."""
    text = _LINK.sub(r"\1", _IMAGE.sub("", text))
    return _collapse(_BOLD.sub(r"\2", _TAG.sub("", text)))


def _collapse(text: str) -> str:
    return " ".join(text.split())


# Layout


@dataclass(frozen=True)
class _Box:
    """A diagram node as a box in diagram coordinates (y grows downwards)."""

    id: str
    type: str
    label: str
    left: float
    top: float
    right: float
    bottom: float

    def holds(self, other: _Box) -> bool:
        """Whether the centre of `other` lies inside this box."""
        x, y = (other.left + other.right) / 2, (other.top + other.bottom) / 2
        return self.left <= x <= self.right and self.top <= y <= self.bottom

    def gaps(self, other: _Box) -> tuple[float, float]:
        """Horizontal and vertical space between the boxes, negative where they overlap."""
        gap_x = max(other.left - self.right, self.left - other.right)
        gap_y = max(other.top - self.bottom, self.top - other.bottom)
        return gap_x, gap_y

    def distance(self, other: _Box) -> float:
        gap_x, gap_y = self.gaps(other)
        return math.hypot(max(gap_x, 0.0), max(gap_y, 0.0))

    def stacks_with(self, other: _Box) -> bool:
        """Touching or stacked: overlapping on one axis, at most ``STACK_GAP`` apart on the other."""
        gap_x, gap_y = self.gaps(other)
        return (gap_x < 0 and gap_y <= STACK_GAP) or (gap_y < 0 and gap_x <= STACK_GAP)

    @property
    def area(self) -> float:
        return (self.right - self.left) * (self.bottom - self.top)


def _diagram(diagram: Any) -> tuple[list[_Box], dict[str, set[str]]]:
    """The boxes of an editor diagram, in order, and its edges as neighbour sets; nothing for another format."""
    if not isinstance(diagram, dict) or not isinstance(diagram.get("nodes"), list):
        return [], {}
    boxes = [_box(node) for node in diagram["nodes"] if isinstance(node, dict) and isinstance(node.get("id"), str)]
    linked: dict[str, set[str]] = {}
    edges = diagram.get("edges")
    for edge in edges if isinstance(edges, list) else []:
        source, target = (edge.get("source"), edge.get("target")) if isinstance(edge, dict) else (None, None)
        if isinstance(source, str) and isinstance(target, str):
            linked.setdefault(source, set()).add(target)
            linked.setdefault(target, set()).add(source)
    return boxes, linked


def _box(node: dict[str, Any]) -> _Box:
    data = node.get("data")
    label = data.get("label") if isinstance(data, dict) else None
    position = [node.get("positionAbsolute"), node.get("position")]
    size = [node, node.get("measured"), node.get("style")]
    left, top = _number(position, "x"), _number(position, "y")
    right, bottom = left + _number(size, "width"), top + _number(size, "height")
    return _Box(node["id"], str(node.get("type")), _collapse(str(label or "")), left, top, right, bottom)


def _number(holders: list[Any], key: str) -> float:
    """The first number found under `key` in the dicts among `holders`, else 0."""
    for holder in holders:
        value = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def _categories(boxes: list[_Box], linked: Mapping[str, set[str]]) -> dict[str, str]:
    """Category of each row node, from the layout.

    1. The top-most heading (a label or topic with two letters or more) of the smallest section box that holds
       the node's centre and a heading other than the node.
    2. Else a topic is its own category.
    3. Else subtopics that touch or stack form a group, whose category is the nearest topic joined to one of them
       by an edge, else the nearest heading.
    """
    sections = sorted((box for box in boxes if box.type == "section"), key=lambda box: box.area)
    headings = [box for box in boxes if box.type in HEADING_TYPES and sum(c.isalpha() for c in box.label) >= 2]
    categories: dict[str, str] = {}
    loose: list[_Box] = []
    for box in boxes:
        if box.type not in ROW_TYPES or not box.label:
            continue
        heading = _section_heading(box, sections, headings)
        if heading is not None:
            categories[box.id] = heading.label
        elif box.type == "topic":
            categories[box.id] = box.label
        else:
            loose.append(box)
    for group in _stacks(loose):
        members = {box.id for box in group}
        joined = [h for h in headings if h.type == "topic" and any(h.id in linked.get(m, ()) for m in members)]
        heading = _nearest(group, joined) or _nearest(group, headings)
        if heading is not None:
            categories.update(dict.fromkeys(members, heading.label))
    return categories


def _section_heading(box: _Box, sections: list[_Box], headings: list[_Box]) -> _Box | None:
    """The top-most heading of the smallest section (`sections` go smallest first) holding `box` and a heading."""
    for section in sections:
        held = [h for h in headings if h.id != box.id and section.holds(h)]
        if held and section.holds(box):
            return min(held, key=lambda h: h.top)
    return None


def _stacks(boxes: list[_Box]) -> list[list[_Box]]:
    """`boxes` split into groups of boxes that stack with one another, directly or through other members."""
    groups: list[list[_Box]] = []
    for box in boxes:
        touching = [group for group in groups if any(box.stacks_with(other) for other in group)]
        groups = [group for group in groups if group not in touching]
        groups.append([member for group in touching for member in group] + [box])
    return groups


def _nearest(group: list[_Box], candidates: list[_Box]) -> _Box | None:
    """The candidate closest to any member of `group`, edge to edge."""
    return min(candidates, key=lambda c: min(c.distance(box) for box in group), default=None)
