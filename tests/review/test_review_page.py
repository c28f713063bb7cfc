"""The review page as a person uses it, in a real headless Chromium (Debian's ``chromium``, driven by Playwright
for Python; no browser download), on the output of a run through the Gemini stub (the CLI, the real SDK): the
token refused when missing or wrong, moving by keyboard, filter to low confidence, read each field's
confidence, correct a value (an invalid one gets the schema's message; a corrected field shows as reviewed),
accept a row, the summary's accuracy by band updated at once, send rows to be asked again (one on a model of
its own), reload; then a re-run through the stub serves the reviewed rows without a request carrying them,
and asks the row on its model."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from enrichkit.rows.files import read_rows
from enrichkit.testing import GeminiStub
from helpers import topic_rows, write_jsonl
from reviewing import ROWS, confidence, run_on_stub, serving

pytestmark = pytest.mark.browser

T = TypeVar("T")

CORRECTED = re.compile(r"\bcorrected\b")

CHROMIUM = shutil.which("chromium")

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("no chromium on the PATH (apt-get install -y chromium; .ci/run installs it)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")


def apart(job: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``job`` in a thread of its own: Playwright's sync API keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(job, *args, **kwargs).result()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_review_low_confidence_rows_and_the_rerun_keeps_them(browser: Any, stub: GeminiStub, tmp_path: Path) -> None:
    source, output, cache = write_jsonl(tmp_path / "rows.jsonl", topic_rows(ROWS)), tmp_path / "out.csv", tmp_path / "c"
    apart(run_on_stub, stub, source, output, cache)
    written = read_rows(output)
    low = sorted(range(ROWS), key=confidence)
    with serving(output, cache) as server:
        page = browser.new_page()
        page.goto(server.url)
        first = page.locator("tr.row").first
        assert first.get_attribute("data-n") == str(low[0])  # the lowest confidence first
        first.focus()
        page.keyboard.press("j")  # down, up, into the row's first field and out again
        sync_api.expect(page.locator("tr.row").nth(1)).to_be_focused()
        page.keyboard.press("k")
        sync_api.expect(first).to_be_focused()
        page.keyboard.press("e")
        sync_api.expect(first.locator("td.field input").first).to_be_focused()
        page.keyboard.press("Escape")
        sync_api.expect(first).to_be_focused()
        for address in (server.url.split("?")[0], server.url[:-3] + "xyz"):  # no token, a wrong one
            refused = browser.new_page()
            assert refused.goto(address).status == 403
            sync_api.expect(refused.locator("body")).to_contain_text("forbidden: missing or wrong token")
            refused.close()

        page.fill("#below", "0.3")
        page.click("#apply")
        below = sum(confidence(n) < 0.3 for n in range(ROWS))
        assert page.locator("#matching").inner_text() == str(below)
        assert page.locator("tr.row").count() == below

        row = page.locator(f'tr.row[data-n="{low[0]}"]')
        challenge = row.locator('td[data-field="challenge"]')
        lowest = f"{confidence(low[0]):.2f}"
        sync_api.expect(challenge.locator(".fconf")).to_have_text(lowest)  # the probability of its value
        sync_api.expect(row.locator('td[data-field="tldr"] .fconf')).to_have_text("")  # free text: none
        sync_api.expect(row.locator("td.conf")).to_have_text(lowest)  # the row's: its lowest closed field's
        challenge.locator("input").fill("beginner")
        challenge.locator("input").press("Enter")  # the page's own check
        sync_api.expect(challenge.locator(".msg")).to_have_text("challenge: 'beginner' not in [practice, expert]")
        tldr = row.locator('td[data-field="tldr"]')
        tldr.locator("input").fill("one two three four five six seven eight nine ten eleven twelve thirteen")
        tldr.locator("input").press("Enter")  # the server's check
        sync_api.expect(tldr.locator(".msg")).to_have_text("tldr: has 13 words, more than 12")

        band = page.locator(".band").first
        sync_api.expect(band).to_have_text("0.00 to 0.50: none reviewed")
        tldr.locator("input").fill("Corrected in the browser.")
        tldr.locator("input").press("Enter")
        sync_api.expect(row).to_have_class(CORRECTED)
        sync_api.expect(band).to_have_text("0.00 to 0.50: 0/1 right")  # at once, no reload
        other_value = {"practice": "expert", "expert": "practice"}[written[low[0]]["challenge"]]
        challenge.locator("input").fill(other_value)
        challenge.locator("input").press("Enter")
        sync_api.expect(challenge).to_have_class(CORRECTED)
        sync_api.expect(challenge.locator(".msg")).to_have_text("")
        sync_api.expect(challenge.locator(".fconf")).to_have_text("reviewed")  # a person's value, not the model's
        sync_api.expect(row.locator("td.conf")).to_have_text(lowest)

        other = page.locator(f'tr.row[data-n="{low[1]}"]')
        other.focus()
        page.keyboard.press("a")  # accept, by keyboard
        sync_api.expect(other.locator(".state")).to_have_text("reviewed")
        sync_api.expect(band).to_have_text("0.00 to 0.50: 1/2 right")  # one accepted, one corrected
        sync_api.expect(page.locator("#reviewed")).to_have_text("2 reviewed")
        accepted = f"{confidence(low[1]):.2f}"
        sync_api.expect(other.locator('td[data-field="challenge"] .fconf')).to_have_text(accepted)
        third = page.locator(f'tr.row[data-n="{low[2]}"]')
        third.focus()
        page.keyboard.press("r")  # ask again
        sync_api.expect(third.locator(".state")).to_have_text("asked again")
        fourth = page.locator(f'tr.row[data-n="{low[3]}"]')
        fourth.focus()
        page.keyboard.press("m")  # ask again on a model: its name, then Enter
        page.keyboard.type("gpt-9000")
        page.keyboard.press("Enter")
        sync_api.expect(fourth.locator(".row-msg")).to_contain_text("unknown model 'gpt-9000'")
        fourth.locator("input.model").fill("gemini-2.5-flash-lite")
        fourth.locator("input.model").press("Enter")
        sync_api.expect(fourth.locator(".state")).to_have_text("asked again on gemini-2.5-flash-lite")

        page.reload()
        sync_api.expect(row.locator('td[data-field="tldr"] input')).to_have_value("Corrected in the browser.")
        sync_api.expect(row.locator('td[data-field="challenge"] input')).to_have_value(other_value)
        sync_api.expect(page.locator("#reviewed")).to_have_text("2 reviewed")
        sync_api.expect(page.locator("#corrected")).to_have_text("1 corrected")
        sync_api.expect(row.locator('td[data-field="challenge"] .fconf')).to_have_text("reviewed")
        sync_api.expect(other.locator('td[data-field="challenge"] .fconf')).to_have_text(accepted)
        sync_api.expect(band).to_have_text("0.00 to 0.50: 1/2 right")
        sync_api.expect(third.locator(".state")).to_have_text("asked again")
        sync_api.expect(fourth.locator(".state")).to_have_text("asked again on gemini-2.5-flash-lite")

    # A re-run on another model: no cached answer fits, yet no request carries the two reviewed rows.
    before = len(stub.generate_calls)
    report, said = apart(run_on_stub, stub, source, tmp_path / "again.jsonl", cache, "--model", "gemini-2.5-flash")
    topic = [row["topic"] for row in written]
    asked = {r["topic"]: call.model for call in stub.generate_calls[before:] for r in call.records}
    assert set(asked) == set(topic) - {topic[low[0]], topic[low[1]]}  # 0 calls for the reviewed rows
    assert asked[topic[low[3]]] == "gemini-2.5-flash-lite" and asked[topic[low[2]]] == "gemini-2.5-flash"
    assert report["reviewed"] == 4 and "reviewed: 4 reviewed values kept" in said
    assert report["by_model"]["gemini-2.5-flash-lite"]["rows"] == 1
    again = read_rows(tmp_path / "again.jsonl")
    assert again[low[0]]["tldr"] == "Corrected in the browser." and again[low[0]]["challenge"] == other_value
    assert again[low[0]]["_reviewed"] == "tldr,challenge" and again[low[1]]["_reviewed"] == "tldr,challenge"
