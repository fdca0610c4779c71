"""The API keys page in headless Chromium: make a key, use it, see it listed, revoke it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat_page import sign_up
from tests.browser.test_chat_ux import shot
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def models(stack: Stack, secret: str) -> int:
    request = urllib.request.Request(
        f"{stack.base_url}/v1/models", headers={"Authorization": f"Bearer {secret}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["data"][0]["id"]
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_make_use_and_revoke_a_key(page: Page, stack: Stack) -> None:
    sign_up(page, stack)
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("my script")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret").text_content()
    assert secret.startswith("mck-")
    shot(page, "api-key-created")
    assert models(stack, secret) == 200
    page.reload()
    expect(page.locator("#keys")).to_contain_text("my script")
    expect(page.locator("#new-key-secret")).to_have_count(0)  # shown once
    assert secret not in page.content()
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("#keys")).to_contain_text("revoked")
    assert models(stack, secret) == 401
