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
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
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


def fill(stack: Stack, conversation_id: str, *, messages: int, other_conversations: int) -> None:
    """Write a long conversation (and more conversations for the list) straight to the database."""
    stack.manage(
        "shell",
        "-c",
        "from webapp.chat.models import Conversation, Message; "
        f"c = Conversation.objects.get(id='{conversation_id}'); "
        "text = 'A paragraph of a long conversation, long enough to wrap over two lines. ' * 3; "
        # One path: Message.save puts a message given no parent after the last one shown.
        f"[Message.objects.create(conversation=c, role=('user', 'assistant')[i % 2], "
        f"content=f'{{i}}: {{text}}') for i in range({messages})]; "
        "Conversation.objects.bulk_create(Conversation(owner=c.owner, title=f'Older chat {i}') "
        f"for i in range({other_conversations}))",
    )


def in_view_and_on_top(page: Page, selector: str) -> bool:
    """Inside the viewport, and the element the person would click at its centre (not under the topbar)."""
    return page.evaluate(
        """(selector) => {
        const element = document.querySelector(selector);
        const box = element.getBoundingClientRect();
        const x = box.left + box.width / 2, y = box.top + box.height / 2;
        if (box.bottom <= 0 || box.top >= innerHeight) return false;
        const hit = document.elementFromPoint(x, y);
        return hit === element || element.contains(hit);
        }""",
        selector,
    )


def test_the_sidebar_stays_in_view_at_the_bottom_of_a_long_conversation(page: Page, stack: Stack) -> None:
    sign_up(page, stack)  # desktop, 1280x800
    page.get_by_role("button", name="+ New chat").click()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    fill(stack, page.url.rstrip("/").rsplit("/", 1)[1], messages=60, other_conversations=45)
    page.reload()
    expect(page.locator(".message")).to_have_count(60)

    page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight)")
    page.wait_for_function(
        "() => window.scrollY > 3 * window.innerHeight"
    )  # a long page, scrolled to its end
    expect(page.locator(".message").last).to_be_in_viewport()
    assert in_view_and_on_top(page, "#new-chat"), '"New chat" is out of view'
    assert in_view_and_on_top(page, "#search-input"), "the search box is out of view"
    page.screenshot(path="test-artifacts/sidebar-long-conversation.png")
    # The topbar's fixed height (the sidebar's offset) holds all it shows.
    assert page.evaluate("(t => t.scrollHeight <= t.clientHeight)(document.querySelector('.topbar'))")

    # The list is longer than the window: the sidebar scrolls, and the page stays where it is.
    page_scroll = page.evaluate("window.scrollY")
    sidebar = page.locator("#sidebar")
    assert page.evaluate("document.getElementById('sidebar').scrollHeight > innerHeight")
    sidebar.hover()
    page.mouse.wheel(0, 5000)
    page.wait_for_function("() => document.getElementById('sidebar').scrollTop > 0")
    assert page.evaluate("window.scrollY") == page_scroll
    expect(page.get_by_role("link", name="Export all")).to_be_in_viewport()
