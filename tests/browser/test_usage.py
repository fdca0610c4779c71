"""The usage page in Chromium: a reply just written shows in the totals, the chart and the CSV, under the strict CSP; axe finds nothing serious."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_chat_page import sign_up
from tests.browser.test_chat_ux import axe_violations
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def test_a_reply_shows_in_my_usage_chart_and_csv(page: Page, stack: Stack) -> None:
    sign_up(page, stack)
    page.get_by_role("button", name="+ New chat").click()
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    page.get_by_label("Message").fill("Count me")
    page.keyboard.press("Enter")
    expect(page.locator(".message.assistant")).to_have_attribute("data-status", "complete", timeout=60_000)

    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", name="Your usage")).to_be_visible()
    expect(page.locator("#total-messages")).to_have_text("1")
    expect(page.locator("#total-replies")).to_have_text("1")
    tokens_out = int(page.locator("#total-tokens-out").text_content().replace(",", ""))
    assert tokens_out > 0 and int(page.locator("#total-tokens-in").text_content().replace(",", "")) > 0
    # Today's column of the tokens chart: two stacked bars (in and out), drawn by the server.
    expect(page.locator("svg[aria-labelledby='tokens-title'] rect.chart-tokens-out")).to_have_count(1)
    expect(page.get_by_role("link", name="Per person")).to_have_count(0)  # staff's navigation
    page.screenshot(path=str(ARTIFACTS / "usage-page.png"), full_page=True)
    assert axe_violations(page) == [], "usage page"

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert rows[0] == ["day", "messages", "replies", "tokens_in", "tokens_out"] and len(rows) == 31
    assert rows[-1][0] == today and rows[-1][1:3] == ["1", "1"] and int(rows[-1][4]) == tokens_out

    # A malformed window: the page says why, with nothing else changed.
    page.goto(f"{stack.base_url}/usage/?from=2026-02-30")
    expect(page.locator("#usage-errors")).to_contain_text("Enter a valid date")
