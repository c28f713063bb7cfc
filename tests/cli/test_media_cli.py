"""The README's worked example: a product CSV with photo paths (relative to the CSV), enriched on the command
line with ``--input photo:image``; broken photos named in the failures file; the local model refuses."""

from __future__ import annotations

import csv as csv_module
import json
from pathlib import Path

from enrichkit.testing import GeminiStub
from enrichkit.testing.media import COLOURS, png
from helpers import invoke, read_jsonl


def products(folder: Path) -> Path:
    (folder / "photos").mkdir()
    lines = ["sku,title,photo"]
    for n, colour in enumerate(["red", "green", "blue", "yellow"]):
        (folder / "photos" / f"{n}.png").write_bytes(png(16, 16, COLOURS[colour]))
        lines.append(f"A{n},Mug model {n},photos/{n}.png")
    lines += ["A8,Broken mug,photos/missing.jpg", "A9,Odd mug,products.csv"]
    path = folder / "products.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def one_line(csv: Path, out: Path, *more: str) -> list[str]:
    return [
        "run", str(csv), "-o", str(out), "--instruction", "Name each product photo's main colour.",
        "--input", "title", "--input", "photo:image", "--column", "colour: red|green|blue|yellow|black|white",
        "--id-field", "sku", "--cache-dir", str(csv.parent / "cache"), "-q", *more,
    ]  # fmt: skip


def test_a_product_csv_with_photo_paths(stub: GeminiStub, tmp_path: Path) -> None:
    csv = products(tmp_path)
    out = tmp_path / "out.csv"
    result = invoke(stub, *one_line(csv, out))
    assert result.exit_code == 1  # some rows failed: the output is written all the same
    with out.open(encoding="utf-8") as file:
        colours = {row["sku"]: row["colour"] for row in csv_module.DictReader(file)}
    assert colours == {"A0": "red", "A1": "green", "A2": "blue", "A3": "yellow", "A8": "", "A9": ""}
    failures = {f["id"]: f["error"] for f in read_jsonl(tmp_path / "out-failures.jsonl")}
    assert failures["A8"].startswith("media input 'photo' (photos/missing.jpg): no such file")
    assert failures["A9"] == "media input 'photo' (products.csv): no image (PNG, JPEG, WebP, GIF) or PDF by its bytes"
    assert len(stub.generate_calls) == 1

    dry = invoke(stub, *one_line(csv, out, "--dry-run", "--json"))
    report, _ = json.JSONDecoder().raw_decode(dry.output)
    assert (report["cache_hits"], report["rows_to_send"], report["media"], report["media_failed"]) == (4, 0, 0, 2)


def test_the_local_model_says_it_cannot_see_images(tmp_path: Path) -> None:
    csv = products(tmp_path)
    result = invoke(None, *one_line(csv, tmp_path / "out.csv", "--provider", "local"))
    assert result.exit_code == 2
    assert "the local model reads text only and cannot see the media input photo" in result.output
    assert not (tmp_path / "out.csv").exists()
