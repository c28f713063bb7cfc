"""The public face: what ``enrichkit`` exports, and what importing it (or asking the CLI for help) loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

import enrichkit

HEAVY = ("google.genai", "openai", "anthropic", "xllamacpp", "redis", "ray", "pandas", "polars", "pyarrow")


def test_the_exports_are_pinned() -> None:
    assert enrichkit.__all__ == [
        "DryRun",
        "EnrichResult",
        "EnrichkitError",
        "Escalate",
        "Failure",
        "FatalProviderError",
        "RetryPolicy",
        "RunOptions",
        "Stats",
        "Task",
        "UserError",
        "adry_run",
        "aenrich",
        "aenrich_chunks",
        "dry_run",
        "enrich",
    ]
    assert all(hasattr(enrichkit, name) for name in enrichkit.__all__)


def loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in sys.modules if m.startswith({HEAVY!r})), file=sys.stderr)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return done.stderr.split()


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "code",
    [
        "import enrichkit",
        "from enrichkit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        "from enrichkit.cli import main\ntry:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass",
    ],
    ids=["import", "help", "run-help"],
)
def test_no_provider_sdk_or_frame_library_is_imported_until_it_is_used(code: str) -> None:
    assert loaded_after(code) == []


@pytest.mark.subprocess
def test_choosing_a_provider_imports_its_sdk_only() -> None:
    code = "from enrichkit.providers import choose_provider\nchoose_provider('openai', base_url='http://127.0.0.1:9')"
    loaded = loaded_after(code)
    assert "openai" in loaded and not [m for m in loaded if m.startswith(("google.genai", "anthropic"))]
