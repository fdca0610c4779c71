"""A send refused by a limit, in headless Chromium: the notice says when to try again, the text stays."""

from __future__ import annotations

import re
import time

import pytest
import redis
from playwright.sync_api import Page, expect

from tests.browser.test_chat_page import sign_up
from tests.browser.test_chat_ux import open_new_chat, shot
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def test_over_the_daily_quota_the_text_is_kept_and_the_wait_shown(page: Page, stack: Stack) -> None:
    username = sign_up(page, stack)
    open_new_chat(page)
    code = f"from django.contrib.auth.models import User; print(User.objects.get(username='{username}').pk)"
    user_id = stack.manage("shell", "-c", code).strip().splitlines()[-1]
    day = time.strftime("%Y%m%d", time.gmtime())
    client = redis.Redis.from_url(stack.env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    client.set(f"{stack.env['REDIS_PREFIX']}:quota:tokens:{user_id}:{day}", stack.env["QUOTA_TOKENS_PER_DAY"])
    page.get_by_label("Message").fill("a message over the quota")
    page.keyboard.press("Enter")
    notice = page.locator("#notice")
    expect(notice).to_contain_text("tokens for today")
    expect(notice).to_have_text(re.compile(r"Try again in \d+ (s|min|h)\.$"))
    expect(page.get_by_label("Message")).to_have_value("a message over the quota")
    expect(page.locator(".message")).to_have_count(0)
    shot(page, "quota-exceeded")
