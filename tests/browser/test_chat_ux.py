"""The chat page people would rather use: markdown, editing, settings, reconnecting, keyboard,
themes, the phone layout and accessibility, in headless Chromium against the really-started stack."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE, accept_sanitizer_reports
from tests.browser.test_chat_page import sign_up
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

# Served like our own scripts: an inline copy would be refused by the Content-Security-Policy.
AXE = "/static/vendor/axe-core/axe.min.js"
SIZES = pytest.mark.parametrize("page", [DESKTOP, PHONE], indirect=True, ids=["desktop", "phone"])
ENDED = re.compile("complete|stopped")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def new_chat(page: Page, stack: Stack, **chat_settings: object) -> None:
    """Sign up, open a new conversation and set its settings through the panel."""
    sign_up(page, stack)
    open_new_chat(page)
    if chat_settings:
        set_settings(page, **chat_settings)


def open_new_chat(page: Page) -> None:
    if page.viewport_size["width"] < 700:  # the sidebar is behind the menu button
        page.locator("#menu-button").click()
    page.get_by_role("button", name="+ New chat").click()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    expect(page.locator("body")).to_have_attribute("data-socket", "open")


def set_settings(page: Page, **chat_settings: object) -> None:
    page.get_by_role("button", name="Settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    labels = {
        "system_prompt": "System prompt",
        "temperature": "Temperature",
        "top_p": "Top p",
        "max_tokens": "Max tokens",
        "seed": "Seed",
    }
    for name, value in chat_settings.items():
        if name == "guardrail":
            dialog.get_by_label("Guardrail prompt").set_checked(bool(value))
        else:
            dialog.get_by_label(labels[name]).fill("" if value is None else str(value))
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()


def send(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.keyboard.press("Enter")


def last_reply(page: Page):
    return page.locator(".message.assistant").last


def wait_ended(page: Page) -> None:
    expect(last_reply(page)).to_have_attribute("data-status", ENDED, timeout=60_000)


# --- 1. markdown, sanitised ---------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)><circle r=5 /></svg>",
    "[x](javascript:alert(1))",
    "[y](JaVaScRiPt:alert(1))",
    "[z](  javascript:alert(1))",
    "<a href='javascript:alert(1)'>a</a>",
    "<a href='data:text/html,<script>alert(1)</script>'>d</a>",
    "![i](javascript:alert(1))",
    '<iframe src="javascript:alert(1)"></iframe>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    "<details open ontoggle=alert(1)>",
    '<div style="background:url(javascript:alert(1))" onmouseover="alert(1)">hover</div>',
    "<form action='javascript:alert(1)'><button>go</button></form>",
    "```html\n<script>alert(1)</script>\n```",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">',
    "<base href='javascript:alert(1)//'>",
    "<input autofocus onfocus=alert(1)>",
]


def test_markdown_renders_code_with_highlighting_and_copy_and_no_script_runs(
    page: Page, stack: Stack, csp_violations: list[str]
) -> None:
    new_chat(page, stack)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    markdown = (
        "# Title\n\nSome **bold** and `code`.\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
        + ("\n\n".join(HOSTILE))
    )
    page.evaluate(
        """async (text) => {
        const { renderInto } = await import('/static/js/markdown.js');
        const box = document.createElement('li');
        box.className = 'message assistant';
        box.id = 'corpus';
        box.innerHTML = '<div class="content"></div>';
        document.getElementById('messages').append(box);
        renderInto(box.querySelector('.content'), text);
        }""",
        markdown,
    )
    corpus = page.locator("#corpus")
    expect(corpus.locator("h1")).to_have_text("Title")
    expect(corpus.locator("strong")).to_have_text("bold")
    code = corpus.locator(".code-block").first
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    expect(code.locator(".code-language")).to_have_text("python")
    page.mouse.move(0, 0)
    corpus.locator("div", has_text="hover").last.hover()
    code.get_by_role("button", name="Copy code").click()
    expect(code.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "def add(a, b):\n    return a + b"
    corpus.scroll_into_view_if_needed()
    shot(page, "markdown-corpus")
    page.wait_for_timeout(300)  # let any handler that survived fire

    found = page.evaluate(
        """() => {
        const root = document.getElementById('corpus');
        const all = [...root.querySelectorAll('*')];
        return {
          scripts: root.querySelectorAll('script, iframe, object, embed, svg, math, img, form, input, base, style').length,
          handlers: all.flatMap(el => [...el.attributes].map(a => a.name)).filter(n => n.startsWith('on')),
          hrefs: all.map(el => el.getAttribute('href') || el.getAttribute('src') || '')
                    .filter(h => /^\\s*(javascript|data|vbscript):/i.test(h)),
          styles: all.filter(el => el.hasAttribute('style')).length,
        };
        }"""
    )
    assert found == {"scripts": 0, "handlers": [], "hrefs": [], "styles": 0}
    assert dialogs == []
    # The fenced HTML is shown as code, not run.
    expect(corpus.locator("pre code").nth(1)).to_contain_text("<script>alert(1)</script>")
    accept_sanitizer_reports(csp_violations)


@SIZES
def test_hostile_user_messages_are_shown_as_typed(page: Page, stack: Stack) -> None:
    new_chat(page, stack, max_tokens=3)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    payloads = ["<img src=x onerror=alert(1)>", "[x](javascript:alert(1))", "<svg onload=alert(1)>"]
    for text in payloads:
        send(page, text)
        expect(page.locator(".message.user .content").last).to_have_text(text)
        wait_ended(page)
    assert page.locator("#messages img, #messages svg").count() == 0
    page.reload()
    expect(page.locator(".message.user .content")).to_have_text(payloads)
    assert page.locator("#messages img, #messages svg, #messages a[href^=javascript]").count() == 0
    assert dialogs == []


# --- 1. streaming: one render per frame, no flicker, auto-scroll that lets go -------------


@pytest.mark.parametrize("page", [PHONE], indirect=True, ids=["phone"])
def test_streaming_renders_progressively_and_scrolling_up_stops_following(page: Page, stack: Stack) -> None:
    new_chat(page, stack, max_tokens=1500, temperature=0)
    page.evaluate(
        """() => {
        window.renders = []; window.tokens = 0; window.blank = 0;
        const list = document.getElementById('messages');
        list.addEventListener('chat:render', (e) => {
          // Inside a requestAnimationFrame callback this is the frame's own time: two renders
          // in one frame share it, whatever the load does to the gaps between frames.
          window.renders.push(document.timeline.currentTime);
          const el = list.querySelector('.message.assistant:last-child .content');
          if (!el.textContent) window.blank += 1;
        });
        window.__chatSocket.addEventListener('message', (m) => { if (JSON.parse(m.data).type === 'token') window.tokens += 1; });
        }"""
    )
    send(page, "Tell me a long story")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "streaming")
    page.wait_for_function(
        "() => document.documentElement.scrollHeight > window.innerHeight + 600", timeout=30_000
    )
    at_bottom = "() => window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 60"
    page.wait_for_function(at_bottom)
    shot(page, "streaming-following-phone")

    page.mouse.move(200, 300)
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(150)
    held = page.evaluate("window.scrollY")
    page.wait_for_timeout(700)  # more text streams in meanwhile
    assert abs(page.evaluate("window.scrollY") - held) < 5, (
        "the page kept scrolling after the reader scrolled up"
    )
    jump = page.get_by_role("button", name="↓ Latest")
    expect(jump).to_be_visible()
    shot(page, "streaming-scrolled-up-phone")
    jump.click()
    page.wait_for_timeout(500)
    assert page.evaluate(at_bottom), "following did not resume at the bottom"

    page.keyboard.press("Escape")  # Esc stops
    expect(reply).to_have_attribute("data-status", "stopped", timeout=10_000)
    renders, tokens, blank = page.evaluate("[window.renders, window.tokens, window.blank]")
    assert blank == 0, "the reply went blank between two renders"
    assert 3 <= len(renders) <= tokens + 1, (len(renders), tokens)
    assert len(set(renders)) == len(renders), "rendered more than once in an animation frame"


# --- 2. regenerate, edit, retry --------------------------------------------------------------


@SIZES
def test_regenerate_edit_and_retry(page: Page, stack: Stack) -> None:
    new_chat(page, stack, max_tokens=4)
    send(page, "first question")
    wait_ended(page)
    first_reply = last_reply(page).get_attribute("data-message-id")

    page.get_by_role("button", name="Regenerate").click()
    expect(page.locator(f'[data-message-id="{first_reply}"]')).to_have_count(0)
    wait_ended(page)
    expect(page.locator(".message.assistant")).to_have_count(1)

    send(page, "second question")
    expect(page.locator(".message")).to_have_count(4)
    wait_ended(page)

    first = page.locator(".message.user").first
    first.get_by_role("button", name="Edit").click()
    editor = first.get_by_label("Edit message")
    expect(editor).to_have_value("first question")
    editor.fill("first question, edited")
    shot(page, f"editing-{page.viewport_size['width']}")
    first.get_by_role("button", name="Save and send").click()
    expect(page.locator(".message")).to_have_count(2)
    expect(page.locator(".message.user .content")).to_have_text("first question, edited")
    wait_ended(page)
    conversation_id = page.url.rstrip("/").rsplit("/", 1)[1]
    rows = stack.stored_messages(conversation_id)
    # Nothing is deleted: both replies to the first question, the second turn and the edit stay.
    assert [(r["role"], r["content"]) for r in rows][0] == ("user", "first question")
    assert ("user", "first question, edited") in [(r["role"], r["content"]) for r in rows]
    assert len(rows) == 7

    # A stopped reply can be retried.
    set_settings(page, max_tokens=2000, temperature=0)
    send(page, "a long one")
    expect(last_reply(page)).to_have_attribute("data-status", "streaming")
    page.get_by_role("button", name="Stop").click()
    expect(last_reply(page)).to_have_attribute("data-status", "stopped", timeout=10_000)
    set_settings(page, max_tokens=4)
    page.get_by_role("button", name="Retry").click()
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=60_000)
    expect(page.locator(".message")).to_have_count(4)
    shot(page, f"after-retry-{page.viewport_size['width']}")


# --- 3. the settings panel ----------------------------------------------------------------


def test_settings_panel_defaults_limits_and_persistence(page: Page, stack: Stack) -> None:
    new_chat(page, stack)
    page.get_by_role("button", name="Settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    expect(dialog.get_by_label("Temperature")).to_have_value("0.7")
    expect(dialog.get_by_label("Top p")).to_have_value("1")
    expect(dialog.get_by_label("Max tokens")).to_have_value("")
    expect(dialog.get_by_label("Seed")).to_have_value("")
    expect(dialog.get_by_label("Guardrail prompt")).to_be_checked()
    shot(page, "settings-panel")

    # Out of range: the page refuses it, nothing is sent, the panel stays open.
    for label, value in [("Temperature", "5"), ("Top p", "0"), ("Max tokens", "999999"), ("Seed", "-3")]:
        dialog.get_by_label(label).fill(value)
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_visible()
        assert dialog.get_by_label(label).evaluate("el => !el.validity.valid")
        dialog.get_by_role("button", name="Cancel").click()
        page.get_by_role("button", name="Settings").click()

    dialog.get_by_role("button", name="Cancel").click()
    set_settings(
        page, system_prompt="Be brief.", temperature=0.2, top_p=0.9, max_tokens=5, seed=42, guardrail=False
    )
    expect(page.locator("#notice")).to_have_text("Settings saved.")
    send(page, "hello")
    wait_ended(page)
    rows = stack.stored_messages(page.url.rstrip("/").rsplit("/", 1)[1])
    assert rows[-1]["completion_tokens"] <= 5

    page.reload()
    page.get_by_role("button", name="Settings").click()
    expect(dialog.get_by_label("System prompt")).to_have_value("Be brief.")
    expect(dialog.get_by_label("Temperature")).to_have_value("0.2")
    expect(dialog.get_by_label("Top p")).to_have_value("0.9")
    expect(dialog.get_by_label("Max tokens")).to_have_value("5")
    expect(dialog.get_by_label("Seed")).to_have_value("42")
    expect(dialog.get_by_label("Guardrail prompt")).not_to_be_checked()


# --- 4. stats, model state, the no-worker banner -------------------------------------------


def test_reply_stats_model_state_and_the_no_worker_banner(page: Page, stack: Stack) -> None:
    new_chat(page, stack, max_tokens=6)
    expect(page.locator("#model-state")).to_have_text(re.compile("ready|busy"))
    expect(page.locator("#worker-banner")).to_be_hidden()
    send(page, "hi")
    wait_ended(page)
    expect(last_reply(page).locator(".meta")).to_have_text(
        re.compile(r"\d+ tokens · first token \d+ ms · [\d.]+ tokens/s")
    )
    page.route(
        "**/healthz",
        lambda route: route.fulfill(json={"model": {"state": "offline", "model": None}, "queue_length": 2}),
    )
    page.reload()
    banner = page.get_by_role("alert").filter(has_text="No model worker is running")
    expect(banner).to_be_visible()
    expect(page.locator("#model-state")).to_have_text("offline")
    shot(page, "worker-down-banner")


# --- 5. reconnecting ------------------------------------------------------------------------


def test_a_dropped_connection_comes_back_and_the_reply_completes(page: Page, stack: Stack) -> None:
    new_chat(page, stack, max_tokens=500, temperature=0)
    page.evaluate(
        "() => document.getElementById('messages').addEventListener('chat:reply-done', (e) => { window.done = e.detail; })"
    )
    send(page, "Keep talking")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "streaming")
    page.wait_for_function(
        "() => document.querySelector('.message.assistant .content').textContent.length > 20"
    )
    page.evaluate("window.__chatSocket.close()")
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Connection lost")
    expect(notice).to_contain_text("resumes")
    shot(page, "reconnecting")
    expect(page.locator("body")).to_have_attribute("data-socket", "open", timeout=15_000)
    expect(reply).to_have_attribute("data-status", "complete", timeout=60_000)
    done = page.evaluate("window.done")
    assert done["status"] == "complete"
    assert done["streamed"] == done["content"], (
        "the text streamed across the drop differs from the stored reply"
    )
    rows = stack.stored_messages(page.url.rstrip("/").rsplit("/", 1)[1])
    assert rows[-1]["content"] == done["content"]


# --- 6. keyboard --------------------------------------------------------------------------------


@SIZES
def test_keyboard_shortcuts_and_the_help_dialog(page: Page, stack: Stack) -> None:
    new_chat(page, stack, max_tokens=3)
    box = page.get_by_role("textbox", name="Message")
    box.click()
    page.keyboard.type("line one?")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(box).to_have_value("line one?\nline two")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_hidden()
    page.keyboard.press("Enter")
    expect(page.locator(".message.user .content")).to_have_text("line one?\nline two")
    wait_ended(page)

    page.locator("body").click(position={"x": 5, "y": 200})
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    for shortcut in ["Send the message", "New line", "Stop the reply", "New chat", "Search conversations"]:
        expect(help_dialog).to_contain_text(shortcut)
    shot(page, f"help-dialog-{page.viewport_size['width']}")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    page.get_by_role("button", name="Keyboard shortcuts").click()
    expect(help_dialog).to_be_visible()
    help_dialog.get_by_role("button", name="Close").click()

    before = page.url
    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(lambda url: url != before and re.search(r"/c/[0-9a-f-]{36}/$", url) is not None)
    page.keyboard.press("Control+k")
    expect(page.get_by_label("Search conversations")).to_be_focused()


# --- 7. themes, the phone layout ------------------------------------------------------------


def background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_theme_follows_the_system_and_the_toggle_sticks(page: Page, stack: Stack) -> None:
    page.emulate_media(color_scheme="dark")
    new_chat(page, stack, max_tokens=3)
    send(page, "Show me a theme")
    wait_ended(page)
    dark = background(page)
    assert dark == "rgb(23, 24, 28)"
    shot(page, "theme-system-dark")
    toggle = page.get_by_role("button", name=re.compile("^Theme"))
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert background(page) == "rgb(247, 247, 248)"
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    shot(page, "theme-light-chosen")
    page.get_by_role("button", name=re.compile("^Theme")).click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.emulate_media(color_scheme="light")
    assert background(page) == dark  # chosen, so it no longer follows the system
    page.get_by_role("button", name=re.compile("^Theme")).click()  # back to the system's
    expect(page.locator("html")).not_to_have_attribute("data-theme", re.compile("."))
    assert background(page) == "rgb(247, 247, 248)"


@pytest.mark.parametrize("page", [PHONE], indirect=True, ids=["phone"])
def test_phone_layout_hides_the_sidebar_behind_the_menu(page: Page, stack: Stack) -> None:
    new_chat(page, stack, max_tokens=3)
    sidebar = page.get_by_role("complementary", name="Conversations")
    menu = page.get_by_role("button", name="Conversations")
    expect(sidebar).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    send(page, "hello from a phone")
    wait_ended(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "sideways scrolling"
    shot(page, "phone-chat")
    menu.click()
    expect(sidebar).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("button", name="+ New chat")).to_be_focused()
    expect(sidebar).to_contain_text("hello from a phone")
    shot(page, "phone-menu-open")
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(menu).to_be_focused()


# --- 7. accessibility: axe-core, no serious or critical violations ---------------------------


def axe_violations(page: Page) -> list[str]:
    page.add_script_tag(url=AXE)
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@SIZES
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_problems(page: Page, stack: Stack, scheme: str) -> None:
    page.emulate_media(color_scheme=scheme)
    page.goto(f"{stack.base_url}/accounts/login/")
    assert axe_violations(page) == [], "login page"
    new_chat(page, stack, max_tokens=4)
    send(page, "Hello, **world**")
    wait_ended(page)
    page.evaluate(
        """async () => {
        const { renderInto } = await import('/static/js/markdown.js');
        const el = document.querySelector('.message.assistant .content');
        renderInto(el, '## Steps\\n\\n1. one\\n2. [a link](https://example.com)\\n\\n```js\\nconst x = 1; // one\\n```\\n\\n> quote');
        }"""
    )
    assert axe_violations(page) == [], "chat page"
    shot(page, f"axe-chat-{scheme}-{page.viewport_size['width']}")
    page.get_by_role("button", name="Settings").click()
    assert axe_violations(page) == [], "settings panel"
