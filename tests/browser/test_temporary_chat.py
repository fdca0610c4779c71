"""A temporary chat in the page: the banner says what it is, and the sidebar never lists it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_page import sign_up
from tests.browser.test_chat_ux import axe_violations
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def test_a_temporary_chat_shows_its_banner_and_stays_out_of_the_sidebar(page: Page, stack: Stack) -> None:
    sign_up(page, stack)
    page.get_by_role("button", name="Temporary chat").click()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    banner = page.locator("#temporary-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Temporary chat.")
    expect(banner).to_contain_text("not in your conversation list, search or exports, and it is deleted")
    expect(page.locator(".download-menu")).to_have_count(0)

    # It works like any chat, and after its reply the sidebar still does not list it.
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    page.get_by_label("Message").fill("Something to forget")
    page.keyboard.press("Enter")
    expect(page.locator(".message.assistant")).to_have_attribute(
        "data-status", re.compile("complete|stopped"), timeout=60_000
    )
    page.reload()
    expect(page.locator("#temporary-banner")).to_be_visible()
    expect(page.locator(".message.user")).to_have_text(re.compile("Something to forget"))
    expect(page.locator("#conversation-list li[data-conversation-id]")).to_have_count(0)
    expect(page.locator("#conversation-list")).to_contain_text("No conversations yet.")

    # The banner, the button and the account page read well in both themes.
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        assert axe_violations(page) == [], f"temporary chat, {scheme}"
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_label("Delete conversations untouched for")).to_be_visible()
    assert axe_violations(page) == [], "account page"
