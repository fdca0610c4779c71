"""Managing conversations in the page: rename in place, delete after confirming, search, shortcuts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_page import sign_up
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def new_chat_with(page: Page, text: str) -> None:
    page.get_by_role("button", name="+ New chat").click()
    page.wait_for_function("document.body.dataset.socket === 'open'")
    page.get_by_label("Message").fill(text)
    page.keyboard.press("Enter")
    expect(page.locator(".message.assistant")).to_have_attribute(
        "data-status", re.compile("complete|stopped"), timeout=60_000
    )


def test_rename_delete_and_search_from_the_sidebar(page: Page, stack: Stack) -> None:
    sign_up(page, stack)
    new_chat_with(page, "Trains from Paris to Lyon")
    new_chat_with(page, "Sorting a list in Python")
    current = page.locator(".conversation-list li.current")
    expect(current.locator("a.title")).to_have_text("Sorting a list in Python")

    # Rename in place: the title changes without a reload, and after one.
    current.hover()
    current.get_by_role("button", name=re.compile("Rename")).click()
    title_input = current.get_by_label("New title")
    title_input.fill("Python sorting")
    title_input.press("Enter")
    expect(current.locator("a.title")).to_have_text("Python sorting")
    page.reload()
    expect(page.locator(".conversation-list li.current a.title")).to_have_text("Python sorting")

    # Search finds the other conversation by a word of its message, highlighted.
    page.keyboard.press("Control+k")
    expect(page.get_by_label("Search conversations")).to_be_focused()
    page.keyboard.type("Lyon")
    page.keyboard.press("Enter")
    hit = page.locator("#search-hits .hit")
    expect(hit).to_have_count(1)
    expect(hit.locator("a")).to_have_text("Trains from Paris to Lyon")
    expect(hit.locator("mark")).to_have_text("Lyon")
    page.screenshot(path="test-artifacts/sidebar-search.png")

    # Delete asks first; dismissing keeps it, accepting deletes it.
    item = page.locator(".conversation-list li", has_text="Python sorting")
    page.once("dialog", lambda dialog: dialog.dismiss())
    item.hover()
    item.get_by_role("link", name=re.compile("Delete")).click()
    expect(item).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    item.get_by_role("link", name=re.compile("Delete")).click()
    expect(page).to_have_url(re.compile(r"/c/$"))
    expect(page.locator(".flash")).to_contain_text("Deleted")
    expect(page.locator(".conversation-list li")).to_have_count(1)
    expect(page.locator(".conversation-list li a.title")).to_have_text("Trains from Paris to Lyon")
