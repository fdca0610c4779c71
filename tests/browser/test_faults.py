"""What the page does when a process dies under it: Daphne restarted, the worker killed.

A private stack (the tests kill its processes), with the scripted engine
writing slowly so that each fault surely lands mid-reply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_ux import last_reply, new_chat, send, shot
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

LONG = " ".join(f"word{i}" for i in range(120))


@pytest.fixture(scope="module")
def fragile_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        tmp=Path(tmp_path_factory.mktemp("fragile")),
        extra_env={
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps({"long please": LONG}),
            "SCRIPTED_DELAY_S": "0.05",
            "DEFAULT_MAX_TOKENS": "2000",
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def record_done(page: Page) -> None:
    page.evaluate(
        "() => document.getElementById('messages').addEventListener('chat:reply-done', (e) => { window.done = e.detail; })"
    )


def test_daphne_restarted_mid_reply_the_page_says_so_reconnects_and_resumes(
    page: Page, fragile_stack: Stack
) -> None:
    new_chat(page, fragile_stack)
    record_done(page)
    send(page, "long please")
    reply = last_reply(page)
    page.wait_for_function(
        "(document.querySelector('.message.assistant .content')?.textContent.length ?? 0) > 20"
    )

    fragile_stack.kill(fragile_stack.daphne)
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Reconnecting")
    expect(notice).to_contain_text("resumes")
    shot(page, "daphne-down")
    time.sleep(2)  # down long enough for a few attempts, each one backing off further
    fragile_stack.start_daphne()

    page.wait_for_function("document.body.dataset.socket === 'open'", timeout=30_000)
    expect(reply).to_have_attribute("data-status", "complete", timeout=60_000)
    done = page.evaluate("window.done")
    assert done["status"] == "complete" and done["content"] == LONG
    assert done["streamed"] == LONG, "text was lost or repeated across the restart"


def test_a_killed_worker_s_reply_shows_failed_with_retry_which_works(
    page: Page, fragile_stack: Stack
) -> None:
    new_chat(page, fragile_stack)
    send(page, "long please")
    page.wait_for_function(
        "(document.querySelector('.message.assistant .content')?.textContent.length ?? 0) > 20"
    )

    fragile_stack.kill(fragile_stack.worker)
    fragile_stack.start_worker()

    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "failed", timeout=45_000)
    expect(reply).to_contain_text("The worker writing this reply stopped")
    shot(page, "worker-killed-retry")
    reply.get_by_role("button", name="Retry").click()
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=60_000)
    expect(last_reply(page).locator(".content")).to_contain_text("word119")
