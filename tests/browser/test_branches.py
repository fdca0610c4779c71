"""Versions in the chat page: regenerate and edit keep the old ones, ‹ 1/2 › walks them by mouse and
keyboard, and a reload shows the path last chosen. Headless Chromium against the really-started stack."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_ux import axe_violations, last_reply, new_chat, send, shot, wait_ended
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def shown(page: Page, message_id: str):
    return page.locator(f'.messages [data-message-id="{message_id}"]')


def test_versions_walk_by_mouse_and_keyboard_and_the_path_is_remembered(page: Page, stack: Stack) -> None:
    new_chat(page, stack, max_tokens=4)
    send(page, "first question")
    wait_ended(page)
    first_reply = last_reply(page).get_attribute("data-message-id")

    page.get_by_role("button", name="Regenerate").click()
    expect(shown(page, first_reply)).to_have_count(0)
    wait_ended(page)
    second_reply = last_reply(page).get_attribute("data-message-id")
    expect(last_reply(page).get_by_role("navigation", name="Version 2 of 2")).to_contain_text("2/2")

    # The mouse: back to the first version.
    last_reply(page).get_by_role("button", name="Previous version").click()
    expect(shown(page, first_reply)).to_have_count(1)
    expect(shown(page, second_reply)).to_have_count(0)
    expect(last_reply(page).get_by_role("navigation", name="Version 1 of 2")).to_contain_text("1/2")
    # The keyboard: the focus stays on the versions, and the arrows walk them.
    expect(last_reply(page).get_by_role("button", name="Next version")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(shown(page, second_reply)).to_have_count(1)
    page.keyboard.press("ArrowLeft")
    expect(shown(page, first_reply)).to_have_count(1)
    shot(page, "versions-reply")

    # An edit is a new version of the question, answered again; the old one stays a click away.
    question = page.locator(".message.user").first
    question.get_by_role("button", name="Edit").click()
    question.get_by_label("Edit message").fill("first question, edited")
    question.get_by_role("button", name="Save and send").click()
    expect(page.locator(".message.user .content")).to_have_text("first question, edited")
    wait_ended(page)
    edited_reply = last_reply(page).get_attribute("data-message-id")
    versions = page.locator(".message.user").first.get_by_role("navigation", name="Version 2 of 2")
    versions.get_by_role("button", name="Previous version").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".message.user .content")).to_have_text("first question")
    # Under the old question, the path goes down to its newest reply.
    expect(shown(page, second_reply)).to_have_count(1)

    # Remembered: a reload shows the same path, with the same versions to walk.
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    expect(page.locator(".message.user .content")).to_have_text("first question")
    expect(shown(page, second_reply)).to_have_count(1)
    expect(shown(page, edited_reply)).to_have_count(0)
    expect(
        page.locator(".message.user").first.get_by_role("navigation", name="Version 1 of 2")
    ).to_be_visible()
    expect(last_reply(page).get_by_role("navigation", name="Version 2 of 2")).to_be_visible()
    shot(page, "versions-reloaded")
    assert axe_violations(page) == []
