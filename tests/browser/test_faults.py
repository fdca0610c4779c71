"""The page under attack and under faults: hostile model and user text, Daphne restarted, the worker killed.

A private stack (the tests kill its processes), with the scripted engine
writing slowly so that each fault surely lands mid-reply, and writing the
XSS corpus as a model reply.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.browser.conftest import DESKTOP, PHONE, accept_sanitizer_reports, watch_csp
from tests.browser.test_chat_page import sign_up
from tests.browser.test_chat_ux import HOSTILE, axe_violations, last_reply, new_chat, send, shot
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

LONG = " ".join(f"word{i}" for i in range(300))
# The markdown corpus of test_chat_ux, and more: entities, markdown link and image tricks, SVG.
# Every payload sets window.__xss instead of opening a dialog, so one that runs is seen either way.
XSS = [
    *(payload.replace("alert(1)", "window.__xss=1") for payload in HOSTILE),
    "<svg><script>window.__xss=1</script></svg>",
    "<svg><a xlink:href='javascript:window.__xss=1'><text y='20'>svg link</text></a></svg>",
    "<svg><animate onbegin=window.__xss=1 attributeName=x dur=1s>",
    "[e](&#106;avascript:window.__xss=1)",
    "[e2](&#x6A;avascript&colon;window.__xss=1)",
    "[p](<javascript:window.__xss=1>)",
    "<javascript:window.__xss=1>",
    "[ref link][r]\n\n[r]: javascript:window.__xss=1",
    '![t](x "onerror=window.__xss=1")',
    '![u](x" onerror="window.__xss=1)',
    "[![nested](x)](javascript:window.__xss=1)",
    "&lt;img src=x onerror=window.__xss=1&gt;",
    "&#60;script&#62;window.__xss=1&#60;/script&#62;",
    "<img src=x onerror=&#119;indow.__xss=1>",
    '<a href="jav&#x09;ascript:window.__xss=1">tab</a>',
    "<style>@import 'javascript:window.__xss=1';</style>",
    "<meta http-equiv='refresh' content='0;url=javascript:window.__xss=1'>",
    "<template><img src=x onerror=window.__xss=1></template>",
    "<video><source onerror=window.__xss=1></video>",
]
CORPUS = "\n\n".join(XSS)


@pytest.fixture(scope="module")
def fragile_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        tmp=Path(tmp_path_factory.mktemp("fragile")),
        extra_env={
            "INFERENCE_ENGINE": "tests.support.scripted_engine.load_engine",
            "SCRIPTED_REPLIES": json.dumps({"xss please": CORPUS, "long please": LONG}),
            "SCRIPTED_DELAY_S": "0.02",
            # Short heartbeats: a dead worker's replies are swept within seconds.
            "WORKER_HEARTBEAT_S": "2",
            "DEFAULT_MAX_TOKENS": "2000",
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def assert_nothing_ran(page: Page, dialogs: list[str], console_errors: list[str]) -> None:
    for link in page.locator("#messages a").all():
        if link.is_visible():
            link.hover()
    page.wait_for_timeout(300)  # let any handler that survived fire
    assert page.evaluate("window.__xss") is None, "a payload ran"
    assert dialogs == [] and console_errors == []
    found = page.evaluate(
        """() => {
        const all = [...document.querySelectorAll('#messages *')];
        return {
          elements: [...document.querySelectorAll('#messages :is(script, iframe, object, embed, svg, math, img, form, input, style, meta, video)')].map(el => el.outerHTML.slice(0, 120)),
          // A <template> may stay, inert, as long as it holds text only.
          templated: [...document.querySelectorAll('#messages template')].flatMap(t => [...t.content.querySelectorAll('*')].map(el => el.tagName)),
          handlers: all.flatMap(el => [...el.attributes].map(a => a.name)).filter(n => n.startsWith('on')),
          hrefs: all.map(el => el.getAttribute('href') || el.getAttribute('src') || el.getAttribute('xlink:href') || '')
                    .filter(h => /^\\s*(javascript|data|vbscript):/i.test(h.replace(/[\\s\\u0000-\\u001f]/g, ''))),
        };
        }"""
    )
    assert found == {"elements": [], "templated": [], "handlers": [], "hrefs": []}


def test_hostile_model_and_user_text_runs_nothing_streamed_or_reloaded(
    page: Page, fragile_stack: Stack, csp_violations: list[str]
) -> None:
    dialogs: list[str] = []
    console_errors: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    def on_console(message: ConsoleMessage) -> None:
        where = message.location.get("url", "")
        # The browser asks for /favicon.ico by itself, and the site has none: not a payload.
        # CSP reports are the page fixture's to check (the sanitizer's parse causes some).
        csp = "Content Security Policy" in message.text
        if message.type == "error" and not where.endswith("/favicon.ico") and not csp:
            console_errors.append(f"{message.text} @ {where}")

    page.on("console", on_console)
    new_chat(page, fragile_stack)
    # The user's text is the corpus too: it is shown as typed, never as markup.
    send(page, "xss please\n\n" + CORPUS)
    expect(page.locator(".message.user .content").last).to_have_text("xss please\n\n" + CORPUS)
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=90_000)
    expect(last_reply(page).locator(".content")).to_contain_text("ref link")
    assert_nothing_ran(page, dialogs, console_errors)
    shot(page, "xss-streamed")

    page.reload()  # rendered again from the stored text
    expect(last_reply(page).locator(".content")).to_contain_text("ref link")
    assert_nothing_ran(page, dialogs, console_errors)
    accept_sanitizer_reports(csp_violations)


def test_a_shared_hostile_reply_runs_nothing_and_continues_as_a_copy(
    page: Page, browser: Browser, fragile_stack: Stack, csp_violations: list[str]
) -> None:
    new_chat(page, fragile_stack)
    send(page, "xss please")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=90_000)
    # On a phone the menu fits the screen; by keyboard it opens with Enter on its summary.
    page.set_viewport_size(PHONE)
    page.locator("#share-menu summary").focus()
    page.keyboard.press("Enter")
    box = page.locator(".share-form").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    shot(page, "share-menu-phone")
    page.set_viewport_size(DESKTOP)
    page.get_by_label("Signed-in people only").check()
    page.get_by_role("button", name="Create link").click()
    expect(page).to_have_url(f"{fragile_stack.base_url}/shares/")
    url = page.get_by_label("The new link").input_value()
    assert "/s/" in url
    assert axe_violations(page) == [], "share links page"
    accept_sanitizer_reports(csp_violations)

    # A fresh browser: no session, then somebody else's.
    context = browser.new_context()
    reader = context.new_page()
    dialogs: list[str] = []
    reader.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    watch_csp(reader, csp_violations)
    try:
        reader.goto(url)
        expect(reader).to_have_url(re.compile(r"/accounts/login/\?next=/s/"))  # signed-in people only
        sign_up(reader, fragile_stack)
        response = reader.goto(url)
        assert response is not None and response.headers["x-robots-tag"].startswith("noindex")
        expect(reader.locator(".message.user .content")).to_have_text("xss please")
        expect(reader.locator(".message.assistant .content")).to_contain_text("ref link")
        assert_nothing_ran(reader, dialogs, [])
        assert axe_violations(reader) == [], "shared page"
        shot(reader, "share-page")
        reader.get_by_role("button", name="Continue this chat as a copy").click()
        expect(reader).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
        expect(reader.locator(".message.assistant .content")).to_contain_text("ref link")
        expect(reader.locator("body")).to_have_attribute("data-socket", "open")
        assert_nothing_ran(reader, dialogs, [])
    finally:
        context.close()
    accept_sanitizer_reports(csp_violations)


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
        "() => (document.querySelector('.message.assistant .content')?.textContent.length ?? 0) > 20"
    )

    fragile_stack.kill(fragile_stack.daphne)
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Reconnecting")
    expect(notice).to_contain_text("resumes")
    shot(page, "daphne-down")
    time.sleep(2)  # down long enough for a few attempts, each one backing off further
    fragile_stack.start_daphne()

    expect(page.locator("body")).to_have_attribute("data-socket", "open", timeout=30_000)
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
        "() => (document.querySelector('.message.assistant .content')?.textContent.length ?? 0) > 20"
    )

    fragile_stack.kill(fragile_stack.worker)
    fragile_stack.start_worker()

    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "failed", timeout=45_000)
    expect(reply).to_contain_text("The worker writing this reply stopped")
    shot(page, "worker-killed-retry")
    reply.get_by_role("button", name="Retry").click()
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=60_000)
    expect(last_reply(page).locator(".content")).to_contain_text("word299")
