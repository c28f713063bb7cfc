"""A local model another process keeps loaded: ``enrichkit serve`` holds llama.cpp's server of a model,
and a run on the same model and settings uses it instead of loading its own, so a CLI run's first row
skips the load and the grammar's first set-up (about 2 s of its 4 on two cores).

The serving process writes what it serves to ``served_dir()/<the model's sha256>.json`` (``Served``: its
address, pid and settings) and removes it when it stops. A run reads it, checks that llama.cpp answers
(``/health``) and then posts to llama.cpp's own HTTP endpoints (``/v1/completions``,
``/v1/chat/completions``, and ``Prefix``'s ``/slots`` and ``/apply-template``), which take and give the
same documents as xllamacpp's in-process handlers. A file whose server does not answer is removed by
the run that finds it; a server that stops during a run is replaced by a load in the run
(``ServerGone``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

from enrichkit.providers.local.jsonfile import write_json
from enrichkit.providers.local.prefix import DIRECT
from enrichkit.providers.local.weights import home

HEALTH_TIMEOUT = 2.0  # seconds a run waits for a served model's /health before loading its own


def served_dir() -> Path:
    """Where serving processes say what they serve."""
    return home() / "served"


class ServerGone(RuntimeError):
    """The serving process stopped answering."""


@dataclass(frozen=True)
class Served:
    """A model served by another process, with the face of xllamacpp's ``Server`` the provider uses."""

    address: str
    pid: int
    model_sha256: str
    runtime: str
    context: int
    slots: int
    threads: int | None
    prefix_dir: str

    @property
    def listening_address(self) -> str:
        return self.address

    def handle_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/v1/completions", body)

    def handle_chat_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/v1/chat/completions", body)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """llama.cpp's answer to ``body``; its refusal (a 4xx with an ``error``) returned as the in-process
        handler returns it; a server that does not answer raises ``ServerGone``."""
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(self.address + path, data=json.dumps(body).encode(), headers=headers)
        try:
            with DIRECT.open(request, timeout=None) as response:
                out: dict[str, Any] = json.loads(response.read())
            return out
        except urllib.error.HTTPError as exc:
            with contextlib.suppress(ValueError):
                doc = json.loads(exc.read())
                if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
                    return doc
            raise RuntimeError(f"the served model answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, HTTPException):
            raise ServerGone(f"the model served by enrichkit serve (pid {self.pid}) stopped answering") from None

    def answers(self) -> bool:
        """Whether llama.cpp answers ``/health`` as ready."""
        health = _get(self.address, "/health")
        return isinstance(health, dict) and health.get("status") == "ok"


def _get(address: str, path: str) -> Any:
    """The JSON llama.cpp at ``address`` answers to a GET of ``path``; None where it does not answer."""
    try:
        with DIRECT.open(address + path, timeout=HEALTH_TIMEOUT) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, HTTPException, ValueError):
        return None


class Watch:
    """How long llama.cpp's slots at ``address`` have not worked (``/slots``: a slot's task id changes
    with each request it takes)."""

    def __init__(self, address: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.address = address
        self.clock = clock
        self.seen: list[tuple[Any, Any, Any]] | None = None
        self.since = clock()

    def idle(self) -> float:
        """Seconds since a slot last took a request or worked (0 where the slots cannot be read)."""
        slots = _get(self.address, "/slots")
        if not isinstance(slots, list) or not all(isinstance(s, dict) for s in slots):
            return 0.0
        seen = [(s.get("id"), s.get("id_task"), s.get("is_processing")) for s in slots]
        if seen != self.seen or any(working for _, _, working in seen):
            self.seen, self.since = seen, self.clock()
        return self.clock() - self.since


def _path(model_sha256: str) -> Path:
    return served_dir() / f"{model_sha256}.json"


def find(model_sha256: str) -> Served | None:
    """The model of that sha256 as another process serves it, if one does and answers; a file left by a
    process that does not answer is removed."""
    path = _path(model_sha256)
    try:
        served = Served(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if served.pid == os.getpid():
        return None
    if served.answers():
        return served
    path.unlink(missing_ok=True)
    return None


@contextlib.contextmanager
def announced(served: Served) -> Iterator[None]:
    """``served`` written where runs look for it (atomically), and removed on the way out."""
    path = _path(served.model_sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, asdict(served))
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == served.pid:
                path.unlink()
