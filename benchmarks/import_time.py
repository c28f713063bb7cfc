"""How long the command line takes to start, against the import of its core dependencies alone.

    .venv/bin/python benchmarks/import_time.py

Each figure is the median wall time of 5 fresh processes: the core dependencies (click, jsonschema,
pydantic, diskcache, tqdm), ``import enrichkit``, and ``enrichkit --help``; then the ratio of the last to
the first (the target: at most 2), and the provider SDKs and frame libraries ``import enrichkit`` loaded
(the target: none).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 5
BIN = Path(sys.executable).parent
HEAVY = ("google.genai", "openai", "anthropic", "xllamacpp", "redis", "ray", "pandas", "polars", "pyarrow")


def median_seconds(command: list[str]) -> float:
    took = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        took.append(time.perf_counter() - start)
    return statistics.median(took)


def heavy_imports() -> list[str]:
    """The heavy top-level modules in ``python -X importtime -c "import enrichkit"``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import enrichkit"], capture_output=True, text=True, check=True
    )
    names = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    return sorted({n for n in names if n.startswith(HEAVY)})


def main() -> None:
    core = median_seconds([sys.executable, "-c", "import click, jsonschema, pydantic, diskcache, tqdm"])
    package = median_seconds([sys.executable, "-c", "import enrichkit"])
    cli = median_seconds([str(BIN / "enrichkit"), "--help"])
    print(f"core dependencies    {core:.3f} s")
    print(f"import enrichkit     {package:.3f} s")
    print(f"enrichkit --help     {cli:.3f} s  ({cli / core:.1f} x the core dependencies; target at most 2 x)")
    print(f"heavy modules loaded by import enrichkit: {', '.join(heavy_imports()) or 'none'}")


if __name__ == "__main__":
    main()
