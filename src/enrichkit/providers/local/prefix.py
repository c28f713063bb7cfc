"""The system prompt processed once and shared: its KV state kept on disk between processes and copied
into every slot of the llama.cpp server, so no run and no slot processes it again.

llama.cpp's server (which xllamacpp runs in process, listening on a local port of its own) saves a
slot's tokens and KV state to a file in its ``slot_save_path`` and restores one into any slot
(``POST /slots/N?action=save|restore``). ``Prefix.warm`` renders the chat template's part before
the user message (``POST /apply-template``) and the user message's fixed start the caller gives
(``lead``: the local notes' reminder), looks for its state in ``prefixes_dir()`` under a name
made of the model's sha256, the runtime's version and that text (its size and CRC-32 checked first,
against a side file: a damaged state is made again, never restored); restores it into each slot, or
processes it in slot 0 (a completion of no tokens), saves it and restores it into the others. A
later request whose prompt starts with it takes it from the slot (``cache_prompt``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from enrichkit.providers.local.weights import home

FORMAT = 2  # bump when what a prefix file holds, or how it is named, changes

KEEP = 16  # prefix files kept in the folder (the newest; one a task and model, ~20 MB each on Qwen-1.5B)

_MARK = "\x01enrichkit-user\x01"

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy: it is localhost


def prefixes_dir() -> Path:
    """Where prefixes are kept, once for every folder the user runs enrichkit in."""
    return home() / "prefixes"


def save_path(folder: Path | None) -> Path:
    """``folder`` (default ``prefixes_dir()``) made; a temporary folder, removed at exit, where it
    cannot be (the prefix is then shared between slots but processed again by the next process)."""
    folder = folder or prefixes_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix="probe-", delete=True)  # noqa: SIM115
        probe.close()
        return folder
    except OSError:
        temp = Path(tempfile.mkdtemp(prefix="enrichkit-prefix-"))
        import atexit

        atexit.register(shutil.rmtree, temp, True)
        return temp


class Prefix:
    """The system prompts whose state the slots of one server hold (``warm``)."""

    def __init__(self, server: Any, folder: Path, slots: int, identity: str) -> None:
        self.server = server
        self.folder = folder
        self.slots = slots
        self.identity = identity  # the model's sha256 and the runtime's version
        self._warmed: set[tuple[str, str]] = set()
        self._parts: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.seconds: float | None = None
        """How long the last ``warm`` that did anything took."""
        self.restored: bool | None = None
        """Whether the last ``warm`` that did anything found the state on disk (False: processed it)."""

    def _post(self, path: str, doc: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            str(self.server.listening_address) + path,
            data=json.dumps(doc).encode(),
            headers={"Content-Type": "application/json"},
        )
        with DIRECT.open(request, timeout=600) as response:
            out: dict[str, Any] = json.loads(response.read())
        return out

    def text(self, system: str) -> str:
        """The prompt's fixed start for the ``system`` message: the chat template up to the user's text."""
        return self.parts(system)[0]

    def parts(self, system: str) -> tuple[str, str]:
        """The chat template of the ``system`` message around the user's text: before it, and after it up
        to where the assistant's reply starts (rendered once per system prompt)."""
        if (parts := self._parts.get(system)) is None:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": _MARK}]
            rendered = str(self._post("/apply-template", {"messages": messages})["prompt"])
            before, after = rendered.split(_MARK, 1)
            parts = self._parts[system] = (before, after)
        return parts

    def file_name(self, prefix: str) -> str:
        digest = hashlib.sha256(f"{FORMAT}\n{self.identity}\n{prefix}".encode()).hexdigest()
        return f"prefix-{digest[:40]}.bin"

    def warm(self, system: str, lead: str = "") -> None:
        """Have every slot hold the state of ``system``'s prompt start and the user message's fixed start
        ``lead`` (once per server, system prompt and lead). Anything that goes wrong only means the first
        requests process it themselves."""
        with self._lock:
            if (system, lead) in self._warmed:
                return
            started = time.perf_counter()
            with contextlib.suppress(OSError, ValueError, KeyError, RuntimeError):
                self.restored = self._warm(self.text(system) + lead)
                self.seconds = time.perf_counter() - started
            self._warmed.add((system, lead))

    def _warm(self, prefix: str) -> bool:
        name = self.file_name(prefix)
        path = self.folder / name
        if path.is_file():
            try:
                if _checksum(path) != _sum_file(path).read_text(encoding="ascii"):
                    raise ValueError("the state's checksum does not match")
                self._restore(name, range(self.slots))
                with contextlib.suppress(OSError):
                    os.utime(path)  # newest first when pruning
                return True
            except (OSError, ValueError, KeyError):  # damaged, or from another build: made again
                path.unlink(missing_ok=True)
                _sum_file(path).unlink(missing_ok=True)
        self.server.handle_completions({"prompt": prefix, "n_predict": 0, "id_slot": 0, "cache_prompt": True})
        temp = f"tmp-{os.getpid()}-{threading.get_ident()}-{name}"
        self._post("/slots/0?action=save", {"filename": temp})
        try:
            self._restore(temp, range(1, self.slots))
            _sum_file(self.folder / temp).write_text(_checksum(self.folder / temp), encoding="ascii")
            os.replace(_sum_file(self.folder / temp), _sum_file(path))
            os.replace(self.folder / temp, path)
        finally:
            (self.folder / temp).unlink(missing_ok=True)
            _sum_file(self.folder / temp).unlink(missing_ok=True)
        self._prune()
        return False

    def _restore(self, name: str, slots: range) -> None:
        for slot in slots:
            self._post(f"/slots/{slot}?action=restore", {"filename": name})

    def _prune(self) -> None:
        """Only the ``KEEP`` newest prefix files stay."""
        with contextlib.suppress(OSError):
            files = sorted(self.folder.glob("prefix-*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in files[KEEP:]:
                old.unlink(missing_ok=True)
                _sum_file(old).unlink(missing_ok=True)


def _sum_file(path: Path) -> Path:
    """The side file holding ``path``'s checksum: a state damaged inside would restore without an error
    and answer wrongly, so it is checked before every restore."""
    return path.with_name(path.name + ".crc32")


def _checksum(path: Path) -> str:
    """``path``'s size and CRC-32 (a few milliseconds for the ~20 MB of a prefix)."""
    data = path.read_bytes()
    return f"{len(data)} {zlib.crc32(data):08x}"
