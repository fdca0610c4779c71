"""The Content-Security-Policy in Chromium: what it forbids does not run, and our pages break none of it.

Every browser test fails on a violation (tests/browser/conftest.py); these are
the cases made on purpose, and the admin, which is Django's own markup.
"""

from __future__ import annotations

import re
import secrets
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_page import PASSWORD, sign_up
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

# What an HTML injection that got past DOMPurify would try: an inline script, an inline
# event handler, an inline style, and a script from another origin.
INJECT = """() => {
  const script = document.createElement("script");
  script.textContent = "window.__injected = 'inline script'";
  document.body.append(script);
  const button = document.createElement("button");
  button.id = "injected";
  button.textContent = "injected";
  button.setAttribute("onclick", "window.__injected = 'event handler'");
  document.body.append(button);
  const styled = document.createElement("div");
  styled.id = "styled";
  styled.setAttribute("style", "width: 123px");
  document.body.append(styled);
  const remote = document.createElement("script");
  remote.src = "https://evil.example/x.js";
  document.body.append(remote);
}"""


def wait_for_reports(page: Page, violations: list[str], *expected: str, timeout: float = 30.0) -> str:
    """The violations reported so far, once each expected piece of text is among them (they come async)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reported = "\n".join(violations)
        if all(piece in reported for piece in expected):
            return reported
        page.wait_for_timeout(100)  # Playwright delivers the page's events while it waits
    raise AssertionError(f"expected {expected} among the CSP violations, got {violations}")


def test_an_injected_inline_script_handler_or_style_does_nothing(
    page: Page, stack: Stack, csp_violations: list[str]
) -> None:
    sign_up(page, stack)
    page.get_by_role("button", name="+ New chat").click()
    # Our own scripts run, and the socket connects ('self' in connect-src covers ws:).
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    assert csp_violations == []

    page.evaluate(INJECT)
    page.locator("#injected").click()
    page.wait_for_timeout(300)  # let anything that was allowed run
    assert page.evaluate("window.__injected") is None
    assert page.evaluate("document.getElementById('styled').getBoundingClientRect().width") != 123
    wait_for_reports(
        page,
        csp_violations,
        "script-src-elem blocked inline",
        "script-src-attr",
        "style-src-attr",
        "evil.example",
    )
    csp_violations.clear()  # these were the point; anything else still fails the test


def test_the_page_cannot_be_framed(page: Page, stack: Stack, csp_violations: list[str]) -> None:
    # A page of our own origin framing the chat: frame-ancestors 'none' refuses even that.
    sign_up(page, stack)
    page.evaluate("""() => {
      const frame = document.createElement("iframe");
      frame.src = "/c/";
      document.body.append(frame);
    }""")
    wait_for_reports(page, csp_violations, "frame-ancestors")
    expect(page.frame_locator("iframe").get_by_role("button", name="+ New chat")).to_have_count(0)
    csp_violations.clear()  # Chromium reports the refused frame; it is what this test wants


def test_the_admin_works_under_the_policy(page: Page, stack: Stack) -> None:
    name = f"admin{secrets.token_hex(3)}"
    stack.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_superuser({name!r}, password={PASSWORD!r})",
    )
    page.goto(f"{stack.base_url}/admin/")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    # A list with its filters and actions, a change form with its widgets: Django's own scripts.
    page.goto(f"{stack.base_url}/admin/auth/user/")
    page.locator("#action-toggle").check()
    expect(page.locator(".action-counter")).to_contain_text(re.compile(r"(\d+) of \1 selected"))
    page.goto(f"{stack.base_url}/admin/auth/user/add/")
    expect(page.get_by_role("heading", name="Add user")).to_be_visible()
    page.goto(f"{stack.base_url}/admin/chat/conversation/")
    expect(page.get_by_role("heading", name=re.compile("Select conversation"))).to_be_visible()
    # Any CSP violation on these pages fails the test (the page fixture).
