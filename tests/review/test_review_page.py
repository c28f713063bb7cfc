"""The review page as a person uses it, in a real headless Chromium (Debian's ``chromium``, driven by Playwright
for Python; no browser download): the token refused when missing or wrong, moving by keyboard, filter to low
confidence, read each field's confidence, correct a value (an invalid one gets the schema's message; a
corrected field shows as reviewed), accept a row, send rows to be asked again (one on a model of its own),
reload; then a re-run serves the reviewed row without a call, and asks the row on its model."""

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
from reviewing import ROWS, confidence, enriched, run, serving

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


def test_review_low_confidence_rows_and_the_rerun_keeps_them(browser: Any, tmp_path: Path) -> None:
    source, output, cache = apart(enriched, tmp_path)
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

        tldr.locator("input").fill("Corrected in the browser.")
        tldr.locator("input").press("Enter")
        sync_api.expect(row).to_have_class(CORRECTED)
        challenge.locator("input").fill("expert")
        challenge.locator("input").press("Enter")
        sync_api.expect(challenge).to_have_class(CORRECTED)
        sync_api.expect(challenge.locator(".msg")).to_have_text("")
        sync_api.expect(challenge.locator(".fconf")).to_have_text("reviewed")  # a person's value, not the model's
        sync_api.expect(row.locator("td.conf")).to_have_text(lowest)

        other = page.locator(f'tr.row[data-n="{low[1]}"]')
        other.focus()
        page.keyboard.press("a")  # accept, by keyboard
        sync_api.expect(other.locator(".state")).to_have_text("reviewed")
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
        fourth.locator("input.model").fill("fn")
        fourth.locator("input.model").press("Enter")
        sync_api.expect(fourth.locator(".state")).to_have_text("asked again on fn")

        page.reload()
        sync_api.expect(row.locator('td[data-field="tldr"] input')).to_have_value("Corrected in the browser.")
        sync_api.expect(row.locator('td[data-field="challenge"] input')).to_have_value("expert")
        sync_api.expect(page.locator("#reviewed")).to_have_text("2 reviewed")
        sync_api.expect(page.locator("#corrected")).to_have_text("1 corrected")
        sync_api.expect(row.locator('td[data-field="challenge"] .fconf')).to_have_text("reviewed")
        sync_api.expect(other.locator('td[data-field="challenge"] .fconf')).to_have_text(accepted)
        sync_api.expect(page.locator(".band").first).to_have_text("0.00 to 0.50: 1/2 right")  # accepted, corrected
        sync_api.expect(third.locator(".state")).to_have_text("asked again")
        sync_api.expect(fourth.locator(".state")).to_have_text("asked again on fn")

    # Another model: no cached answer fits, yet the two fully reviewed rows are not asked.
    report, asked = apart(run, source, tmp_path / "again.jsonl", cache, model="fn2")
    assert (asked, report["reviewed"], report["by_model"]["fn"]["rows"]) == (ROWS - 2, 4, 1)  # one row on fn
    again = read_rows(tmp_path / "again.jsonl")
    assert again[low[0]]["tldr"] == "Corrected in the browser." and again[low[0]]["challenge"] == "expert"
    assert again[low[0]]["_reviewed"] == "tldr,challenge"
