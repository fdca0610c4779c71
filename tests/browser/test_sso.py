"""Single sign-on in Chromium: the log-in page's button, the real provider's page, and the chat."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.oidc_provider.process import oidc_provider
from tests.support.stack import Stack, free_port

pytestmark = pytest.mark.browser
ERIN = {"password": "erin-Passw0rd!", "email": "erin@example.com", "email_verified": True, "groups": []}


@pytest.fixture
def sso_url(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """A provider process, and one more Daphne on the stack that signs in only through it (LOCAL_LOGIN=0)."""
    port = free_port()
    client = {
        "client_id": "mistral-chat",
        "client_secret": "browser-s3cret",
        "redirect_uri": f"http://127.0.0.1:{port}/accounts/sso/company/callback/",
    }
    with oidc_provider(tmp_path, port=free_port(), users={"erin": ERIN}, client=client) as issuer:
        provider = {"id": "company", "label": "Company ID", "issuer": issuer, **client}
        del provider["redirect_uri"]
        env = {"OIDC_PROVIDERS": json.dumps([provider]), "OIDC_ALLOW_HTTP": "1", "LOCAL_LOGIN": "0"}
        with stack.another_daphne(env, port=port) as url:
            yield url


def test_the_button_signs_in_at_the_provider_and_lands_in_the_chat(page: Page, sso_url: str) -> None:
    page.goto(f"{sso_url}/accounts/login/")
    expect(page.get_by_label("Password")).to_have_count(0)  # LOCAL_LOGIN=0: the buttons only
    page.get_by_role("link", name="Sign in with Company ID").click()
    expect(page.get_by_role("heading", name="Test provider: sign in")).to_be_visible()
    page.get_by_label("Username").fill("erin")
    page.get_by_label("Password").fill(ERIN["password"])
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(sso_url)}/c/$"))
    page.get_by_role("button", name="+ New chat").click()
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
