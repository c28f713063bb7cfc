"""The roadmap.sh scraper plugin (examples/roadmap, installed by the Makefile), on a synthetic roadmap folder
(roadmap.sh content must not be copied here: its licence forbids it), plus one comparison with the real published
rows when the shared data is on this machine."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from enrichkit.errors import UserError
from enrichkit.testing import GeminiStub
from enrichkit_roadmap import scrape as roadmap
from enrichkit_roadmap.scrape import RAW_BASE, NotFound, scrape_roadmap
from helpers import SHARED, TASK, invoke

NAME = "garden"
REAL_RAW = SHARED / "roadmaps" / "raw"


def node(node_id: str, node_type: str, label: str, x: float, y: float, w: float = 200, h: float = 40) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": node_type,
        "position": {"x": x, "y": y},
        "width": w,
        "height": h,
        "data": {"label": label},
    }


# Section A holds section B; B holds a letterless caption above its real heading. The rest is loose layout:
# a topic with a stack of two subtopics joined to it by an edge (a caption sits nearer), two subtopics side by side
# under a caption, and one subtopic 13 px below them (too far to stack) near another caption.
NODES = [
    node("secA", "section", "", 0, 0, 400, 400),
    node("lbl-plans", "label", "Garden Plans", 20, 10, 200, 30),
    {"id": "secB", "type": "section", "position": {"x": 0, "y": 100}, "measured": {"width": 400, "height": 150}},
    node("lbl-amp", "label", "&", 20, 102, 50, 20),
    node("lbl-seeds", "label", "Seed Choice", 20, 125, 200, 20),
    node("lbl-late", "label", "Late note", 20, 220, 200, 20),
    node("sd-1_aa", "subtopic", "Heirloom seeds", 20, 160),
    node("s8", "subtopic", "  Compost   and\n Mulch ", 20, 300, 190),
    node("td_3", "todo", "Sharpen shears", 20, 350),
    node("rb_2-bb", "subtopic", "Raised beds", 220, 300, 150),
    node("tp-water", "topic", "Watering", 600, 0, 200, 50),
    node("lbl-near", "label", "Nearby Caption", 850, -45),
    node("s3_dup", "subtopic", "Drip Lines", 850, 0),
    node("s4-dup", "subtopic", "Soaker hoses", 850, 45),
    node("tp-prune", "topic", "Pruning — Ästhetik", 1500, 1000, 200, 50),
    node("lbl-harvest", "label", "Harvest Time", 600, 440),
    node("s5", "subtopic", "Pick at dawn", 600, 500),
    node("s6", "subtopic", "Cure squash", 810, 500),
    node("s7", "subtopic", "Root cellar", 600, 553),
    node("lbl-store", "label", "Storage", 600, 600),
    node("p1", "paragraph", "A paragraph of layout text", 0, 700),
    node("b1", "button", "Open the guide", 0, 760),
    node("s-empty", "subtopic", "", 0, 800),
]
EDGES = [{"source": "tp-water", "target": "s4-dup"}, {"source": "s3_dup", "target": "tp-prune"}]

HEIRLOOM = """Heirloom Seeds
==============

**Overview**

![a packet](img/packet.png)

Heirloom seeds are *open-pollinated* varieties kept for [generations](https://example.org/heirloom "History")
by **careful** growers — “saved” each autumn, at 12 °C or θ₀. Use `seed_store --dry` and __label__ jars.

Visit the following resources to learn more:

- [@article@Seed saving](https://example.org/saving)
"""
HEIRLOOM_TEXT = (
    "Heirloom seeds are *open-pollinated* varieties kept for generations by careful growers — “saved” each autumn,"
    " at 12 °C or θ₀. Use `seed_store --dry` and label jars."
)
RAISED = """# Building Raised Garden Beds

## Why

```text
this fence holds text

that looks like prose
```

<div class="note">Boxed html</div>

| width | depth |
| --- | --- |

> A quoted line.

1. first step
* starred item

---

A raised bed warms <em>early</em> in spring. ![tiny](x.png)It
drains well.

A second paragraph is not used.
"""
CONTENT = {
    "heirloom-seeds@sd-1_aa.md": HEIRLOOM,
    "building-raised-beds@rb_2-bb.md": RAISED,
    "sharpen-shears@td_3.md": "# Sharpen Shears\n\nKeep blades keen.\n",
    "compost-and-mulch@s8.md": "# Compost and Mulch\n\nFeed the soil.\n",
    "watering@tp-water.md": "# Watering\n\nVisit the following resources to learn more:\n\n- [@video@Drip](https://x.y)\n",
    "drip-lines@s3_dup.md": "# Drip Lines\n\nShort.\n",
    "old-irrigation@s3_dup.md": "# Old Irrigation\n\nA longer text from before the node was renamed.\n",
    "hoses@s4-dup.md": "# Hoses\n\nSmall.\n",
    "soaker@s4-dup.md": "# Soaker\n\nThe larger of two files, neither named after the label.\n",
    "pruning@tp-prune.md": "# Pruning\n\nCut back in winter.\n",
    "pick-at-dawn@s5.md": "# Pick at Dawn\n\nCool mornings.\n",
    "root-cellar@s7.md": "# Root Cellar\n\nDark and damp.\n",
    "stray-note@zz-unmatched.md": "# Stray Note\n\nNot on the chart.\n",
    "loose-page.md": "Just a paragraph with no heading.\n",
    "index.md": "# Index\n\nSkipped.\n",
    "dummy.md": "placeholder\n",
    "notes.txt": "not markdown\n",
}


def write_roadmap(parent: Path, diagram: Any, content: dict[str, str]) -> Path:
    folder = parent / NAME
    (folder / "content").mkdir(parents=True)
    if diagram is not None:
        (folder / f"{NAME}.json").write_text(json.dumps(diagram), encoding="utf-8")
    for file, text in content.items():
        (folder / "content" / file).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def garden(tmp_path: Path) -> Path:
    return write_roadmap(tmp_path, {"nodes": NODES, "edges": EDGES}, CONTENT)


def by_topic(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["topic"]: row for row in rows}


def test_rows_follow_the_diagram_then_the_unmatched_files_with_layout_categories(garden: Path) -> None:
    rows = scrape_roadmap(NAME, garden)
    assert [(row["topic"], row["category"], row["node_type"]) for row in rows] == [
        ("Heirloom seeds", "Seed Choice", "subtopic"),  # smallest section; letterless caption skipped
        ("Compost and Mulch", "Garden Plans", "subtopic"),  # outer section, whitespace collapsed
        ("Sharpen shears", "Garden Plans", "todo"),
        ("Raised beds", "Garden Plans", "subtopic"),
        ("Watering", "Watering", "topic"),  # a topic is its own category
        ("Drip Lines", "Watering", "subtopic"),  # stack joined by edges: nearest joined topic beats a nearer caption
        ("Soaker hoses", "Watering", "subtopic"),
        ("Pruning — Ästhetik", "Pruning — Ästhetik", "topic"),
        ("Pick at dawn", "Harvest Time", "subtopic"),  # side by side, 10 px apart: one group, nearest caption
        ("Cure squash", "Harvest Time", "subtopic"),
        ("Root cellar", "Storage", "subtopic"),  # 13 px below: its own group
        ("loose-page", None, None),  # files matching no node, by file name
        ("Stray Note", None, None),
    ]
    assert [row["id"] for row in rows][-2:] == ["garden:loose-page", "garden:zz-unmatched"]
    assert len({row["id"] for row in rows}) == len(rows)


def test_row_fields_come_from_the_label_and_the_content_file(garden: Path) -> None:
    rows = by_topic(scrape_roadmap(NAME, garden))
    assert rows["Raised beds"] == {
        "roadmap": "garden",
        "id": "garden:rb_2-bb",
        "category": "Garden Plans",
        "topic": "Raised beds",
        "content_title": "Building Raised Garden Beds",
        "description": "A raised bed warms early in spring. It drains well.",
        "node_type": "subtopic",
        "content_file": "garden/content/building-raised-beds@rb_2-bb.md",
    }
    assert list(rows["Raised beds"]) == list(rows["Stray Note"])
    assert rows["Heirloom seeds"]["content_title"] == "Heirloom Seeds"
    assert rows["Heirloom seeds"]["description"] == HEIRLOOM_TEXT
    assert rows["Watering"]["description"] == ""  # only a resources list
    assert rows["loose-page"]["content_title"] is None
    assert rows["loose-page"]["description"] == "Just a paragraph with no heading."


def test_a_node_without_a_file_keeps_its_row(garden: Path) -> None:
    row = by_topic(scrape_roadmap(NAME, garden))["Cure squash"]
    assert (row["content_title"], row["description"], row["content_file"]) == (None, "", None)


def test_of_several_files_for_one_id_the_one_named_after_the_label_wins_else_the_largest(garden: Path) -> None:
    rows = by_topic(scrape_roadmap(NAME, garden))
    assert rows["Drip Lines"]["content_file"] == "garden/content/drip-lines@s3_dup.md"
    assert rows["Soaker hoses"]["content_file"] == "garden/content/soaker@s4-dup.md"
    assert not {"Index", "dummy", "notes"} & {row["topic"] for row in rows.values()}


def test_the_roadmap_folder_or_its_parent_may_be_given(garden: Path) -> None:
    assert scrape_roadmap(NAME, garden) == scrape_roadmap(NAME, garden.parent)


CONTENT_ONLY = {
    "b-topic@id2.md": "# B Topic\n\nSecond.\n",
    "a-old-name@id1.md": "# Renamed Long Ago\n\nThe bigger, stale file of id1, kept for history.\n",
    "fresh-name@id1.md": "# Fresh Name\n\nCurrent.\n",
    "zeta.md": "plain text, no heading\n",
}


@pytest.mark.parametrize(
    "diagram",
    [None, {"mockup": {"controls": {"control": []}}}, {"nodes": [node("only", "button", "Start", 0, 0)]}],
    ids=["no-json", "legacy-format", "stub"],
)
def test_without_a_usable_diagram_each_content_file_is_a_row(tmp_path: Path, diagram: Any) -> None:
    rows = scrape_roadmap(NAME, write_roadmap(tmp_path, diagram, CONTENT_ONLY))
    assert [(row["id"], row["topic"], row["content_file"]) for row in rows] == [
        ("garden:id1", "Fresh Name", "garden/content/fresh-name@id1.md"),  # named after its own H1
        ("garden:id2", "B Topic", "garden/content/b-topic@id2.md"),
        ("garden:zeta", "zeta", "garden/content/zeta.md"),
    ]
    assert {(row["category"], row["node_type"]) for row in rows} == {(None, None)}


def describe(tmp_path: Path, markdown: str) -> tuple[str | None, str]:
    (row,) = scrape_roadmap(NAME, write_roadmap(tmp_path, None, {"page@p1.md": markdown}))
    return row["content_title"], row["description"]


@pytest.mark.parametrize(
    ("markdown", "title", "description"),
    [
        ("# One  Title #\nFirst line\njoined.\n\nSecond.", "One Title", "First line joined."),
        (
            "Setext Title\n---\n\n**Bold caption:**\n\nText with [a link](https://a.b/c) and __bold__.",
            "Setext Title",
            "Text with a link and bold.",
        ),
        ("# T\n\n## Sub\n\n- list\n\n> quote\n\nVisit the following resources:\n\n", "T", ""),
        (
            "# T\n\n`a_b` and [T any](not a url) and <b>tag</b>, <!DOCTYPE> too.",
            "T",
            "`a_b` and [T any](not a url) and tag, <!DOCTYPE> too.",
        ),
        ("\n\n# Ünïcode ✓\n\nπ ≈ 3.14 “quotes” — dashes\n", "Ünïcode ✓", "π ≈ 3.14 “quotes” — dashes"),
        ("# Only a heading\n", "Only a heading", ""),
    ],
    ids=["atx", "setext-bold-link", "no-prose", "inline-code-and-html", "unicode", "heading-only"],
)
def test_descriptions_are_the_first_prose_paragraph_as_plain_text(
    tmp_path: Path, markdown: str, title: str, description: str
) -> None:
    assert describe(tmp_path, markdown) == (title, description)


def test_problems_are_one_line_user_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope: no such folder"):
        scrape_roadmap(NAME, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: neither garden\.json nor a content/ folder"):
        scrape_roadmap(NAME, tmp_path / "empty")
    with pytest.raises(UserError, match="not a roadmap name"):
        scrape_roadmap("../etc", tmp_path)


def test_bad_json_and_bad_utf8_are_located(tmp_path: Path) -> None:
    folder = write_roadmap(tmp_path, None, {"ok@a.md": "# A\n"})
    (folder / "garden.json").write_text('{\n  "nodes": [\n    oops\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"garden\.json:3: malformed JSON"):
        scrape_roadmap(NAME, folder)
    (folder / "garden.json").unlink()
    (folder / "content" / "bad@b.md").write_bytes(b"# B\n\n\xff\n")
    with pytest.raises(UserError, match=r"bad@b\.md: not UTF-8 text \(bad byte at offset 5\)"):
        scrape_roadmap(NAME, folder)


def fake_web(folder: Path | None, fetched: list[str]) -> Callable[[str], bytes]:
    """A fetch serving `folder` at the scraper's URLs (404 for everything when None), logging each URL asked."""
    pages: dict[str, bytes] = {}
    if folder is not None:
        if (folder / f"{NAME}.json").exists():
            pages[f"{RAW_BASE}/{NAME}/{NAME}.json"] = (folder / f"{NAME}.json").read_bytes()
        listing = [{"name": "img", "type": "dir", "download_url": None}]
        for path in sorted((folder / "content").iterdir()):
            url = f"https://files.example/{path.name}"
            pages[url] = path.read_bytes()
            listing.append({"name": path.name, "type": "file", "download_url": url})
        pages[roadmap.CONTENTS_API.format(name=NAME)] = json.dumps(listing).encode()

    def fetch(url: str) -> bytes:
        fetched.append(url)
        if url not in pages:
            raise NotFound(f"{url}: HTTP 404 (not found)")
        return pages[url]

    return fetch


def test_an_injected_fetch_gives_the_same_rows_and_skips_placeholders(garden: Path) -> None:
    fetched: list[str] = []
    assert scrape_roadmap(NAME, fetch=fake_web(garden, fetched)) == scrape_roadmap(NAME, garden)
    assert not [url for url in fetched if url.endswith(("index.md", "dummy.md", ".txt"))]


def test_a_fetched_roadmap_without_diagram_uses_its_files_and_an_unknown_one_is_an_error(garden: Path) -> None:
    (garden / f"{NAME}.json").unlink()
    rows = scrape_roadmap(NAME, fetch=fake_web(garden, []))
    assert {row["node_type"] for row in rows} == {None} and len(rows) == 12  # 14 files, two ids with two each
    with pytest.raises(UserError, match="no such roadmap"):
        scrape_roadmap(NAME, fetch=fake_web(None, []))


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/broken/"):
            self.send_error(500)
        else:
            super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web(garden: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local HTTP server for the garden folder, with the scraper's URLs pointed at it."""
    root = garden.parent
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    files = sorted(p.name for p in (garden / "content").iterdir())
    listing = [{"name": name, "download_url": f"{base}/{NAME}/content/{name}"} for name in files]
    (root / "api.json").write_text(json.dumps(listing), encoding="utf-8")
    monkeypatch.setattr(roadmap, "RAW_BASE", base)
    monkeypatch.setattr(roadmap, "CONTENTS_API", f"{base}/api.json")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield base
    server.shutdown()
    server.server_close()
    thread.join()


def test_over_http_the_rows_match_the_local_folder(web: str, garden: Path) -> None:
    assert scrape_roadmap(NAME) == scrape_roadmap(NAME, garden)


def test_http_errors_name_the_url(web: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roadmap, "RAW_BASE", f"{web}/broken")
    with pytest.raises(UserError, match=rf"{web}/broken/garden/garden\.json: HTTP 500"):
        scrape_roadmap(NAME)
    monkeypatch.setattr(roadmap, "RAW_BASE", "http://127.0.0.1:1")
    with pytest.raises(UserError, match=r"127\.0\.0\.1:1/garden/garden\.json: cannot fetch"):
        scrape_roadmap(NAME)


@pytest.mark.skipif(not (REAL_RAW / "engineering-manager").is_dir(), reason="shared roadmap data not on this machine")
def test_engineering_manager_matches_the_published_rows_exactly() -> None:
    published = SHARED / "roadmaps" / "engineering-manager.jsonl"
    expected = [json.loads(line) for line in published.read_text(encoding="utf-8").splitlines()]
    rows = scrape_roadmap("engineering-manager", REAL_RAW)
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert list(row.items()) == list(want.items())


def test_scrape_roadmap_from_a_folder_and_enrich(stub: GeminiStub, tmp_path: Path) -> None:
    folder = write_roadmap(tmp_path, {"nodes": NODES, "edges": EDGES}, CONTENT)
    out, cache = tmp_path / "out.csv", str(tmp_path / "cache")
    args = ["scrape", "roadmap", NAME, "--from", str(folder), "--enrich", TASK, "-o", str(out), "--cache-dir", cache]
    first = invoke(stub, *args)
    assert first.exit_code == 0, first.output
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["id"].startswith(f"{NAME}:") and r["challenge"] for r in rows)
    calls = len(stub.generate_calls)
    again = invoke(stub, *args)
    assert again.exit_code == 0 and len(stub.generate_calls) == calls and "calls: 0" in again.stderr


def test_engineering_manager_roadmap_scrapes_and_enriches_134_rows(stub: GeminiStub, tmp_path: Path) -> None:
    source = SHARED / "roadmaps" / "raw" / "engineering-manager"
    if not source.is_dir():
        pytest.skip(f"{source} is not here (shared data sets live beside the project, not in it)")
    out, cache = tmp_path / "out.csv", str(tmp_path / "cache")
    args = ["scrape", "roadmap", "engineering-manager", "--from", str(source), "--enrich", TASK, "-o", str(out)]
    first = invoke(stub, *args, "--cache-dir", cache)
    assert first.exit_code == 0, first.output
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 134 and len({r["id"] for r in rows}) == 134
    assert all(r["tldr"] and r["challenge"] in ("practice", "expert") for r in rows)
    assert len(stub.generate_calls) == 7  # ceil(134 / 20)
    again = invoke(stub, *args, "--cache-dir", cache)
    assert again.exit_code == 0 and len(stub.generate_calls) == 7
    assert "134 cache hits, 0 newly enriched" in again.stderr and "calls: 0" in again.stderr
