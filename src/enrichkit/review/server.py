"""The review server: the standard library's threading HTTP server on 127.0.0.1, one page and three writes
(correct a field, accept a row, send a row to be asked again, on the run's model or one of ``Session.models``).

Every request needs the run's random token (the page's address carries it; the page sends it back in a
header): a request without it, or with another, is refused (403), as is one whose Host is not this
loopback address (a page elsewhere cannot reach the server through DNS rebinding). Writes are POSTs of
JSON only; they change the reviewed values in the cache folder and nothing else. Two tabs never lose an
edit: each write names the row's version it started from, and one made from an older version is refused
(409) with the version now, the typed value left in the page to save again.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from enrichkit.engine.reviewed import Conflict
from enrichkit.review.page import band_text, query_of, render, shown
from enrichkit.review.past import Past
from enrichkit.review.session import Invalid, Session

TOKEN_HEADER = "X-Review-Token"

MAX_BODY = 1 << 20


class ReviewServer(ThreadingHTTPServer):
    """Serves ``session`` on 127.0.0.1 (``port`` 0: a free one) until ``shutdown``."""

    daemon_threads = True

    def __init__(self, session: Session, port: int = 0, past: Past | None = None) -> None:
        self.session = session
        self.past = past  # what the run history holds of the output: rows' stories, models, the previous run
        self.token = secrets.token_urlsafe(24)
        self.lock = threading.Lock()  # one write at a time (the store orders them across processes too)
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: a request's line holds the token."""

    def _allowed(self, token: str | None) -> bool:
        host = self.headers.get("Host", "")
        if host not in (f"127.0.0.1:{self.server.port}", f"localhost:{self.server.port}"):
            self._send(HTTPStatus.FORBIDDEN, "text/plain", b"forbidden: not this server's address\n")
            return False
        if token is None or not hmac.compare_digest(token.encode(), self.server.token.encode()):
            self._send(HTTPStatus.FORBIDDEN, "text/plain", b"forbidden: missing or wrong token\n")
            return False
        return True

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if not self._allowed(params.get("token")):
            return
        if url.path != "/":
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
            return
        nonce = secrets.token_urlsafe(12)
        session = self.server.session
        page = render(session, query_of(params, session.fields), self.server.token, nonce, self.server.past)
        csp = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self';"
            " form-action 'self'; img-src 'self' data:"
        )
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", page.encode(), {"Content-Security-Policy": csp})

    def do_POST(self) -> None:
        if not self._allowed(self.headers.get(TOKEN_HEADER)):
            return
        if self.headers.get_content_type() != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send JSON"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 < length <= MAX_BODY:
                raise ValueError("no body, or too big")
            doc = json.loads(self.rfile.read(length))
            n, version = int(doc["n"]), int(doc["version"])
            if not 0 <= n < len(self.server.session.table.rows):
                raise ValueError(f"no row {n}")
            model = doc.get("model") or None
            if model is not None and not isinstance(model, str):
                raise ValueError("model: a name, or none")
        except (ValueError, KeyError, TypeError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {exc}"})
            return
        session = self.server.session
        try:
            with self.server.lock:
                if self.path == "/api/correct":
                    new = session.correct(n, str(doc["field"]), str(doc["value"]), version)
                elif self.path == "/api/accept":
                    new = session.accept(n, version)
                elif self.path == "/api/again":
                    new = session.ask_again(n, version, model)
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                    return
        except Invalid as exc:
            self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)})
            return
        except Conflict as exc:
            self._json(HTTPStatus.CONFLICT, {"error": str(exc), "version": exc.version})
            return
        except KeyError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {exc}"})
            return
        review = session.reviews([n]).get(n)
        summary = session.summary()
        counts = {
            "reviewed": summary.reviewed,
            "corrected": summary.corrected,
            "bands": [band_text(b) for b in summary.bands],
        }
        answer: dict[str, Any] = {"version": new, "values": session.values(n, review), "summary": counts}
        if session.table.has_confidence:
            answer["confidence"] = {f: shown(c) for f, c in session.confidences({n: review})[n].items()}
        self._json(HTTPStatus.OK, answer)

    def _json(self, status: HTTPStatus, doc: dict[str, Any]) -> None:
        self._send(status, "application/json", json.dumps(doc, ensure_ascii=False).encode())

    def _send(self, status: HTTPStatus, kind: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
