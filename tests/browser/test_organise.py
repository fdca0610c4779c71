"""Organising in the page: a folder, a bulk move, a pin and an archive, and the sidebar following."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_page import sign_up
from tests.browser.test_chat_ux import axe_violations, shot
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def test_folder_bulk_move_pin_and_archive(page: Page, stack: Stack) -> None:
    username = sign_up(page, stack)
    stack.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; from webapp.chat.models import Conversation; "
        f"owner = get_user_model().objects.get(username='{username}'); "
        "[Conversation.objects.create(owner=owner, title=t) for t in ('Alpha', 'Beta', 'Gamma')]",
    )
    page.goto(f"{stack.base_url}/c/")
    sidebar = page.get_by_role("complementary", name="Conversations")

    page.get_by_label("New folder").fill("Work")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#all-heading")).to_contain_text("Work")
    page.get_by_role("navigation", name="Views").get_by_role("link", name="All").click()

    # Two chats into the folder by one bulk action.
    page.get_by_label("Choose “Alpha”").check()
    page.get_by_label("Choose “Beta”").check()
    page.get_by_label("Action").select_option("move")
    page.get_by_label("Folder", exact=True).select_option(label="Work")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".flash")).to_contain_text("Moved 2 conversations.")
    folder = sidebar.locator("details.folder", has_text="Work")
    expect(folder.locator("li a.title")).to_have_text(["Beta", "Alpha"])  # newest first

    # Pin one from the sidebar, by keyboard: it goes on top, out of its folder's group.
    folder.locator("li", has_text="Alpha").get_by_role("button", name="Pin “Alpha”").focus()
    page.keyboard.press("Enter")
    expect(sidebar.locator(".conversation-list.pinned li a.title")).to_have_text(["Alpha"])
    expect(sidebar.locator(".conversation-list li a.title").first).to_have_text("Alpha")

    # Archive the other: it leaves the sidebar and is found in the archive.
    page.get_by_label("Choose “Beta”").check()
    page.get_by_label("Action").select_option("archive")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".flash")).to_contain_text("Archived 1 conversation.")
    expect(sidebar.locator("li a.title")).to_have_text(["Alpha", "Gamma"])
    shot(page, "organise-list")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        violations = axe_violations(page)
        assert violations == [], (scheme, violations)
    sidebar.get_by_role("link", name="Archived").click()
    expect(page.locator(".conversation-table li")).to_have_count(1)
    expect(page.locator(".conversation-table")).to_contain_text("Beta")

    # On a phone the list page does not scroll sideways, and the menu shows the groups.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{stack.base_url}/c/")
    expect(page).to_have_url(re.compile(r"/c/$"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "sideways scrolling"
    shot(page, "organise-list-phone")
    page.get_by_role("button", name="Conversations").click()
    expect(sidebar.get_by_role("heading", name="Pinned")).to_be_visible()
    expect(sidebar.locator("details.folder summary")).to_have_text("Work")
