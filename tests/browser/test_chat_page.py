"""What a person does in the page, in headless Chromium against the really-started stack."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

PASSWORD = "a-long-Passw0rd!"


def sign_up(page: Page, stack: Stack) -> str:
    username = f"person{secrets.token_hex(3)}"
    page.goto(f"{stack.base_url}/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/c/$"))
    # The URL changes when the navigation commits, before the new document has a body:
    # a caller's script could run against an empty page.
    page.wait_for_load_state("load")
    return username


def test_sign_up_chat_watch_the_reply_stream_and_find_it_after_reload(page: Page, stack: Stack) -> None:
    username = sign_up(page, stack)
    expect(page.locator(".account")).to_contain_text(username)
    expect(page.locator("#model-name")).to_have_text("tiny-random-mistral")

    page.get_by_role("button", name="+ New chat").click()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    expect(page.locator("body")).to_have_attribute("data-socket", "open")

    # Record every text the reply is rendered from while it streams, to see it grow in pieces.
    page.evaluate(
        """() => {
        window.seen = [];
        document.getElementById('messages').addEventListener('chat:render', (e) => window.seen.push(e.detail.text));
        document.getElementById('messages').addEventListener('chat:reply-done', (e) => { window.final = e.detail.content; });
        }"""
    )
    page.get_by_label("Message").fill("Write me a poem about the sea")
    page.keyboard.press("Enter")

    expect(page.locator(".message.user .content")).to_have_text("Write me a poem about the sea")
    reply = page.locator(".message.assistant")
    expect(reply).to_have_attribute("data-status", "streaming")
    page.screenshot(path=str(ARTIFACTS / "chat-streaming.png"))
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(reply).to_have_attribute("data-status", "complete", timeout=60_000)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()

    rendered = reply.locator(".content").text_content()
    final = page.evaluate("window.final")
    assert final and rendered
    seen = [text for text in page.evaluate("window.seen") if text]
    assert len(set(seen)) >= 3, "the reply appeared at once, not token by token"
    assert all(final.startswith(text) for text in seen), "streamed text was not a growing prefix of the reply"
    expect(reply.locator(".meta")).to_contain_text("tokens")

    page.reload()
    expect(page.locator(".message.user .content")).to_have_text("Write me a poem about the sea")
    expect(page.locator(".message.assistant .content")).to_have_text(rendered)
    expect(page.locator(".conversation-list .current")).to_contain_text("Write me a poem about the sea")


def test_the_stop_button_stops_the_reply(page: Page, stack: Stack) -> None:
    sign_up(page, stack)
    page.get_by_role("button", name="+ New chat").click()
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    page.evaluate(
        "() => { const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws/conversations/' + "
        "JSON.parse(document.getElementById('conversation-id').textContent) + '/');"
        "ws.onopen = () => ws.send(JSON.stringify({type: 'send', content: 'A long story please', "
        "params: {max_tokens: 4000, temperature: 0}})); }"
    )
    reply = page.locator(".message.assistant")
    expect(reply).to_have_attribute("data-status", "streaming")
    page.get_by_role("button", name="Stop").click()
    expect(reply).to_have_attribute("data-status", "stopped", timeout=10_000)
    expect(reply.locator(".meta")).to_contain_text("stopped")
    text = reply.locator(".content").text_content()
    page.reload()
    expect(page.locator(".message.assistant")).to_have_attribute("data-status", "stopped")
    expect(page.locator(".message.assistant .content")).to_have_text(text or "")


def test_log_out_and_back_in_sidebar_lists_newest_first(page: Page, stack: Stack) -> None:
    username = sign_up(page, stack)
    titles = ["older chat", "newer chat"]
    for title in titles:
        page.get_by_role("button", name="+ New chat").click()
        expect(page.locator("body")).to_have_attribute("data-socket", "open")
        page.get_by_label("Message").fill(title)
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".message.assistant")).to_have_attribute(
            "data-status", re.compile("complete|stopped"), timeout=60_000
        )
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.goto(f"{stack.base_url}/c/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".conversation-list li")).to_have_count(2)
    expect(page.locator(".conversation-list li").first).to_contain_text("newer chat")
    expect(page.locator(".conversation-list li").last).to_contain_text("older chat")
