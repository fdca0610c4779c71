"""SIGNUP_MODE=approval in Chromium: sign up, be told to wait, an administrator approves, log in and chat."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, watch_csp
from tests.browser.test_chat_page import PASSWORD
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


@pytest.fixture
def approval_url(stack: Stack) -> Iterator[str]:
    """One more Daphne on the stack (same database, Redis and worker) whose sign-up waits for approval."""
    with stack.another_daphne({"SIGNUP_MODE": "approval"}) as url:
        yield url


def log_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_a_sign_up_waits_for_an_administrator_then_chats(
    page: Page, browser: Browser, stack: Stack, approval_url: str, csp_violations: list[str]
) -> None:
    administrator = f"admin{secrets.token_hex(3)}"
    stack.manage(
        "shell",
        "-c",
        f"from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user({administrator!r}, password={PASSWORD!r})",
    )
    assert "is now administrator" in stack.manage("set_role", administrator, "administrator")

    person = f"person{secrets.token_hex(3)}"
    page.goto(f"{approval_url}/accounts/signup/")
    expect(page.locator("#approval-note")).to_contain_text("wait for an administrator's approval")
    page.get_by_label("Username").fill(person)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#pending")).to_contain_text("waits for an administrator's approval")
    log_in(page, approval_url, person)
    expect(page.locator(".errors")).to_contain_text("waiting for an administrator's approval")

    context = browser.new_context(viewport=DESKTOP)
    admin = context.new_page()
    admin.set_default_timeout(30_000)
    watch_csp(admin, csp_violations)
    try:
        log_in(admin, approval_url, administrator)
        admin.get_by_role("link", name="People").click()
        admin.get_by_role("link", name=re.compile(r"1 waiting for approval")).click()
        admin.get_by_role("link", name=person).click()
        expect(admin.locator("#person-status")).to_have_text("pending")
        admin.get_by_role("button", name="Approve this sign-up").click()
        expect(admin.locator(".flash")).to_contain_text(f"{person} is approved")
        expect(admin.locator("#person-status")).to_have_text("active")
    finally:
        context.close()

    log_in(page, approval_url, person)
    expect(page).to_have_url(re.compile(r"/c/$"))
    page.get_by_role("button", name="+ New chat").click()
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    page.get_by_label("Message").fill("Hello at last")
    page.keyboard.press("Enter")
    expect(page.locator(".message.assistant")).to_have_attribute("data-status", "complete", timeout=60_000)
