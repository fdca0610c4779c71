"""Exporting from the pages, in headless Chromium against the really-started stack."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_page import sign_up
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def test_the_downloaded_json_holds_what_the_page_shows(page: Page, stack: Stack) -> None:
    sign_up(page, stack)
    page.get_by_role("button", name="+ New chat").click()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    conversation_id = page.url.rstrip("/").rsplit("/", 1)[1]
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    page.get_by_label("Message").fill("Write me a poem about the sea")
    page.keyboard.press("Enter")
    expect(page.locator(".message.assistant")).to_have_attribute("data-status", "complete", timeout=60_000)
    # The text behind each message (a reply shows as rendered markdown; `rawText` is its source).
    shown = page.eval_on_selector_all(
        ".message",
        "items => items.map(m => [m.classList.contains('user') ? 'user' : 'assistant',"
        " m.rawText ?? m.querySelector('.content').textContent])",
    )
    assert len(shown) == 2 and shown[1][1]

    # From the conversation's own Download menu.
    page.get_by_text("Download", exact=True).click()
    with page.expect_download() as markdown:
        page.get_by_role("link", name="Markdown").click()
    assert markdown.value.suggested_filename == "Write-me-a-poem-about-the-sea.md"
    assert "Write me a poem about the sea" in markdown.value.path().read_text(encoding="utf-8")

    page.goto(f"{stack.base_url}/c/export/")
    row = page.locator(f'li[data-conversation-id="{conversation_id}"]')
    with page.expect_download() as download:
        row.locator('a[data-format="json"]').click()
    assert download.value.suggested_filename == "Write-me-a-poem-about-the-sea.json"
    document = json.loads(download.value.path().read_text(encoding="utf-8"))
    assert document["id"] == conversation_id and document["format"] == "mistral-chat/conversation"
    assert [[m["role"], m["content"]] for m in document["messages"]] == shown
    assert document["messages"][1]["status"] == "complete"

    # The whole-account zip: the form leads to a page that counts, then starts the download.
    page.get_by_label("md").check()
    with page.expect_download() as zipped:
        page.get_by_role("button", name="Download the zip").click()
        expect(page.locator("#export-summary")).to_contain_text("1 conversation (2 messages)")
    archive = zipfile.ZipFile(zipped.value.path())
    assert sorted(name.rsplit(".", 1)[1] for name in archive.namelist()) == ["json", "md"]
    assert shown[1][1] in archive.read(next(n for n in archive.namelist() if n.endswith(".md"))).decode()
