"""Media values read, sniffed, capped and hashed: local files, http(s) URLs from a real local server, data:
URLs and bytes; each problem a reason for its row alone."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from enrichkit import Task
from enrichkit.errors import UserError
from enrichkit.rows.keys import key_rows
from enrichkit.rows.media import MediaError, MediaReader, pixels, sniff
from enrichkit.testing.media import COLOURS, pdf, png

RED = png(3, 2, COLOURS["red"])
TASK = Task.from_columns("Describe", ["title", "photo:image"], ["caption: text"])


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes]]] = {}

    def do_GET(self) -> None:
        status, headers, body = self.routes.get(self.path, (404, {}, b"not here"))
        if self.path == "/slow":
            time.sleep(1.0)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet when the reader hung up (a body over the cap is not read to its end)."""


@pytest.fixture
def server() -> Iterator[str]:
    big = b"\x89PNG\r\n\x1a\n" + b"0" * 3_000_000
    _Handler.routes = {
        "/red.png": (200, {"Content-Type": "image/png"}, RED),
        "/unlabelled": (200, {"Content-Type": "application/octet-stream"}, RED),
        "/page.html": (200, {"Content-Type": "text/html"}, b"<html></html>"),
        "/big.png": (200, {"Content-Type": "image/png"}, big),
        "/hop1": (302, {"Location": "/hop2"}, b""),
        "/hop2": (302, {"Location": "/hop3"}, b""),
        "/hop3": (302, {"Location": "/hop4"}, b""),
        "/hop4": (302, {"Location": "/red.png"}, b""),
        "/to-red": (301, {"Location": "/red.png"}, b""),
        "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
        "/slow": (200, {"Content-Type": "image/png"}, RED),
    }
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_type_is_sniffed_from_the_bytes_not_the_name() -> None:
    assert sniff(RED) == "image/png"
    assert sniff(b"\xff\xd8\xff\xe0" + b"\0" * 20) == "image/jpeg"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert sniff(b"GIF89a\x05\x00\x03\x00") == "image/gif"
    assert sniff(pdf("hello")) == "application/pdf"
    assert sniff(b"hello") is None
    assert pixels(RED, "image/png") == (3, 2)
    assert pixels(b"GIF89a\x05\x00\x03\x00", "image/gif") == (5, 3)
    jpeg = b"\xff\xd8" + b"\xff\xe0\x00\x04ab" + b"\xff\xc0\x00\x11\x08\x00\x20\x00\x40" + b"\0" * 10
    assert pixels(jpeg, "image/jpeg") == (64, 32)


def test_a_file_a_data_url_and_bytes_are_the_same_content(tmp_path: Path) -> None:
    (tmp_path / "a.gif").write_bytes(RED)  # a PNG under a .gif name: still a PNG
    reader = MediaReader(tmp_path)
    url = "data:image/png;base64," + base64.b64encode(RED).decode()
    refs = [reader.ref(value, "image") for value in ("a.gif", str(tmp_path / "a.gif"), url, RED)]
    assert {r.sha256 for r in refs} == {hashlib.sha256(RED).hexdigest()}
    assert {r.mime for r in refs} == {"image/png"}
    assert all(reader.read(r) == RED for r in refs)
    doc = reader.ref(pdf("two words"), "media")
    assert (doc.mime, doc.pages) == ("application/pdf", 1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("missing.png", "no such file"),
        ("", "the value is empty"),
        (42, "not a path or URL"),
        ("ftp://example.com/a.png", "ftp: URLs are not read"),
        ("data:image/png;base64", "a data: URL without a comma"),
        ("folder", "a folder, not a file"),
        ("text.png", "no image (PNG, JPEG, WebP, GIF) or PDF by its bytes"),
        ("doc.pdf", "a PDF, where the input takes images"),
    ],
)
def test_a_value_that_cannot_be_sent_says_why(tmp_path: Path, value: object, reason: str) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "doc.pdf").write_bytes(pdf("hi"))
    with pytest.raises(MediaError, match=re.escape(reason)):
        MediaReader(tmp_path).ref(value, "image")


def test_a_file_over_the_cap_is_refused_as_it_streams(tmp_path: Path) -> None:
    (tmp_path / "big.png").write_bytes(png(600, 600, COLOURS["red"], noise=1_200_000))
    with pytest.raises(MediaError, match=r"bigger than the 1 MB cap \(--max-media-mb\)"):
        MediaReader(tmp_path, max_mb=1).ref("big.png", "image")


def test_urls_are_fetched_once_checked_and_sent_from_the_spool(server: str) -> None:
    reader = MediaReader(timeout=30)
    try:
        ref = reader.ref(f"{server}/red.png", "image")
        assert ref.sha256 == hashlib.sha256(RED).hexdigest()
        assert reader.read(ref) == RED
        assert reader.ref(f"{server}/unlabelled", "image").mime == "image/png"
        assert reader.ref(f"{server}/to-red", "image").sha256 == ref.sha256
        problems = {
            "page.html": "the server sent text/html, not an image or PDF",
            "nothing": "the server answered 404",
            "big.png": "bigger than the 1 MB cap",
            "hop1": "more than 3 redirects",
            "to-file": "redirected to a URL that is not http or https",
            "slow": "no answer within 0.3 s",
        }
        for path, reason in problems.items():  # the timeout short only where it is what the test is about
            with pytest.raises(MediaError, match=reason):
                MediaReader(max_mb=1, timeout=0.3 if path == "slow" else 30).ref(f"{server}/{path}", "image")
    finally:
        reader.close()


def test_the_key_holds_the_content_so_a_moved_file_is_the_same_key(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(RED)
    (tmp_path / "b.png").write_bytes(RED)
    (tmp_path / "c.png").write_bytes(png(3, 2, COLOURS["blue"]))
    rows = [{"title": "x", "photo": name} for name in ("a.png", "b.png", "c.png", "gone.png")]
    keyed = key_rows(rows, TASK, "fp", media=MediaReader(tmp_path))
    assert keyed.keys[0] == keyed.keys[1] != keyed.keys[2]
    assert list(keyed.broken.values()) == [
        f"media input 'photo' (gone.png): no such file (looked at {tmp_path / 'gone.png'})"
    ]
    assert "a.png" not in keyed.texts[0] and hashlib.sha256(RED).hexdigest() in keyed.texts[0]


def test_a_file_changed_after_it_was_keyed_is_never_sent_as_that_key(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(RED)
    reader = MediaReader(tmp_path)
    ref = reader.ref("a.png", "image")
    (tmp_path / "a.png").write_bytes(png(3, 2, COLOURS["blue"]))
    with pytest.raises(UserError, match="changed while the run read it"):
        reader.read(ref)


def test_media_inputs_in_a_task_file_and_on_the_command_line() -> None:
    inputs: list[Any] = ["title", {"name": "scan", "media": "pdf"}]
    task = Task("Describe", inputs, {"type": "object", "properties": {"x": {}}})
    assert task.inputs == ("title", "scan")
    assert task.media == {"scan": "pdf"}
    assert task.document()["inputs"] == ["title", {"name": "scan", "media": "pdf"}]
    assert Task.from_columns("Describe", ["title", "photo:image"], ["x: text"]).media == {"photo": "image"}
    with pytest.raises(UserError, match=r"\$\.inputs\[1\]"):
        bad: list[Any] = ["title", {"name": "scan", "media": "video"}]
        Task("Describe", bad, {"type": "object", "properties": {"x": {}}})
