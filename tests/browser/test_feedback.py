"""👍/👎 in the chat page: pressed state, the reasons and comment, kept over a reload, and on a version
shown after a switch."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_ux import last_reply, new_chat, send, shot, wait_ended
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def test_rate_a_reply_and_find_the_rating_after_a_reload_and_a_switch(page: Page, stack: Stack) -> None:
    new_chat(page, stack, max_tokens=4)
    send(page, "rate me")
    wait_ended(page)
    good = last_reply(page).get_by_role("button", name="Good reply")
    expect(good).to_have_attribute("aria-pressed", "false")
    good.click()
    expect(good).to_have_attribute("aria-pressed", "true")

    page.reload()
    expect(last_reply(page).get_by_role("button", name="Good reply")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(last_reply(page).get_by_role("button", name="Bad reply")).to_have_attribute(
        "aria-pressed", "false"
    )

    # A second version, rated down; back on the first, its own rating is shown.
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    first = last_reply(page).get_attribute("data-message-id")
    page.get_by_role("button", name="Regenerate").click()
    expect(page.locator(f'[data-message-id="{first}"]')).to_have_count(0)
    wait_ended(page)
    bad = last_reply(page).get_by_role("button", name="Bad reply")
    bad.click()
    expect(bad).to_have_attribute("aria-pressed", "true")
    # Why: the reasons offered for 👎 and a comment, kept.
    last_reply(page).get_by_role("button", name="Why?").click()
    dialog = page.get_by_role("dialog", name="What went wrong?")
    dialog.get_by_label("Not correct").check()
    dialog.get_by_label("Comment (optional)").fill("The sea is not purple.")
    shot(page, "feedback-why")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    last_reply(page).get_by_role("button", name="Why?").click()
    expect(dialog.get_by_label("Not correct")).to_be_checked()
    expect(dialog.get_by_label("Comment (optional)")).to_have_value("The sea is not purple.")
    dialog.get_by_role("button", name="Cancel").click()
    last_reply(page).get_by_role("button", name="Previous version").click()
    expect(last_reply(page).get_by_role("navigation", name="Version 1 of 2")).to_be_visible()
    expect(last_reply(page).get_by_role("button", name="Good reply")).to_have_attribute(
        "aria-pressed", "true"
    )
    # Pressing the pressed one takes the rating back.
    last_reply(page).get_by_role("button", name="Good reply").click()
    expect(last_reply(page).get_by_role("button", name="Good reply")).to_have_attribute(
        "aria-pressed", "false"
    )
