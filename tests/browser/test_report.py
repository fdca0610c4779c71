"""Reporting a reply from the chat page, in headless Chromium against the really-started stack."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_page import sign_up
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def reports_of(stack: Stack, username: str) -> list[dict]:
    code = (
        "import json; from webapp.moderation.models import Report; "
        f"print(json.dumps(list(Report.objects.filter(reporter__username='{username}')"
        ".values('reason', 'detail', 'status', 'message__role'))))"
    )
    return json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])


def test_report_a_reply_with_a_reason(page: Page, stack: Stack) -> None:
    username = sign_up(page, stack)
    page.get_by_role("button", name="+ New chat").click()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    page.get_by_label("Message").fill("Tell me something")
    page.keyboard.press("Enter")
    reply = page.locator(".message.assistant")
    expect(reply.get_by_role("button", name="Report")).to_have_count(0)  # not while it streams
    expect(reply).to_have_attribute("data-status", "complete", timeout=60_000)
    expect(page.locator(".message.user .report-button")).to_have_count(0)  # only replies

    reply.get_by_role("button", name="Report").click()
    dialog = page.locator("#report-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Send report").click()  # no reason chosen: the browser asks for one
    expect(dialog).to_be_visible()
    dialog.get_by_label("What is wrong with it?").select_option("misinformation")
    dialog.get_by_label("Anything to add? (optional)").fill("That is not true.")
    dialog.get_by_role("button", name="Send report").click()
    expect(dialog).to_be_hidden()
    expect(reply.get_by_role("button", name="Reported")).to_be_disabled()
    assert reports_of(stack, username) == [
        {
            "reason": "misinformation",
            "detail": "That is not true.",
            "status": "open",
            "message__role": "assistant",
        }
    ]

    # After a reload the reply can be reported again: the server answers with the open report.
    page.reload()
    page.locator(".message.assistant").get_by_role("button", name="Report").click()
    page.locator("#report-dialog").get_by_label("What is wrong with it?").select_option("other")
    page.locator("#report-dialog").get_by_role("button", name="Send report").click()
    expect(page.locator("#report-dialog")).to_be_hidden()
    assert len(reports_of(stack, username)) == 1
