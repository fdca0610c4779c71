"""A moderator at /moderation/ sees a flagged reply arrive live and bans its author, in headless Chromium."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import ARTIFACTS, DESKTOP, watch_csp
from tests.browser.test_chat_page import PASSWORD, sign_up
from tests.browser.test_chat_ux import axe_violations
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

PHRASE = "velvet hammer"


@pytest.fixture
def moderator_page(browser: Browser, stack: Stack, csp_violations: list[str]) -> Iterator[Page]:
    """A staff member logged in, and a rule that flags the phrase in what users send."""
    name = f"mod{secrets.token_hex(3)}"
    stack.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; from webapp.moderation.models import Rule; "
        f"get_user_model().objects.create_user({name!r}, password={PASSWORD!r}, is_staff=True); "
        f"Rule.objects.get_or_create(kind='phrase', pattern={PHRASE!r}, "
        "defaults={'category': 'violence_and_threats', 'action': 'flag'})",
    )
    context = browser.new_context(viewport=DESKTOP)
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    watch_csp(opened, csp_violations)
    opened.goto(f"{stack.base_url}/accounts/login/?next=/moderation/")
    opened.get_by_label("Username").fill(name)
    opened.get_by_label("Password").fill(PASSWORD)
    opened.get_by_role("button", name="Log in").click()
    expect(opened).to_have_url(re.compile(r"/moderation/$"))
    try:
        yield opened
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / "moderation-dashboard-final.png"), full_page=True)
        context.close()
    assert not errors, f"JavaScript errors on the dashboard: {errors}"
    assert not csp_violations, f"Content-Security-Policy violations on the dashboard: {csp_violations}"


def test_a_moderator_sees_a_flagged_reply_live_and_bans_its_author(
    page: Page, moderator_page: Page, stack: Stack
) -> None:
    moderator = moderator_page
    expect(moderator.locator("body")).to_have_attribute("data-moderation-socket", "open")

    author = sign_up(page, stack)
    page.get_by_role("button", name="+ New chat").click()
    expect(page.locator("body")).to_have_attribute("data-socket", "open")
    page.get_by_label("Message").fill(f"Bring the {PHRASE} tonight")
    page.keyboard.press("Enter")
    expect(page.locator(".message.assistant")).to_have_attribute("data-status", "complete", timeout=60_000)

    # The open dashboard hears of it without a reload.
    expect(moderator.locator("#live-banner")).to_be_visible(timeout=15_000)
    expect(moderator.locator("#live-banner")).to_contain_text("new item")
    # Each new item is listed as it arrives, before any reload: what caught it, and where.
    # (The tiny model's random reply may be flagged too, by the classifier: look for ours.)
    expect(
        moderator.locator("#live-items li", has_text="flag · violence_and_threats · rules at input")
    ).to_have_count(1)
    moderator.screenshot(path=str(ARTIFACTS / "moderation-live-banner.png"))
    moderator.locator("#live-refresh").click()
    moderator.get_by_label("User").fill(author)
    moderator.get_by_label("Hook").fill("rules")
    moderator.get_by_role("button", name="Filter").click()
    item = moderator.locator(".queue-item")
    expect(item).to_have_count(1)
    expect(item.locator(".badge.action")).to_have_text("flag")
    expect(item.locator(".categories")).to_have_text("violence_and_threats")
    # Flagged at input: the user's message is the one marked, with the reply after it.
    expect(item.locator(".context-message.user.target")).to_contain_text(f"Bring the {PHRASE} tonight")
    expect(item.locator(".context-message.assistant")).to_be_visible()
    moderator.screenshot(path=str(ARTIFACTS / "moderation-queue.png"), full_page=True)
    assert axe_violations(moderator) == [], "the queue"

    # Banning asks first; dismissing the question bans nobody.
    moderator.once("dialog", lambda dialog: dialog.dismiss())
    item.get_by_role("button", name=f"Ban {author}").click()
    expect(moderator.locator(".flash")).to_have_count(0)
    moderator.once("dialog", lambda dialog: dialog.accept())
    item.get_by_role("button", name=f"Ban {author}").click()
    expect(moderator.locator(".flash")).to_contain_text("Banned 1 person.")
    expect(moderator).to_have_url(re.compile(rf"/moderation/\?.*user={author}"))  # the same filtered view

    # The stats page draws its charts inline, the new event among them.
    moderator.get_by_role("link", name="Stats").click()
    expect(moderator.locator("svg.chart").first).to_be_visible()
    expect(moderator.locator("rect.chart-violence-and-threats").first).to_be_visible()
    moderator.screenshot(path=str(ARTIFACTS / "moderation-stats.png"), full_page=True)
    assert axe_violations(moderator) == [], "the stats page"
    moderator.get_by_role("link", name="Policies").click()
    assert axe_violations(moderator) == [], "the policies page"

    # The author's open page is told at once, its socket closed; their next message gets the
    # error, stays in the composer, and is not stored.
    expect(page.locator("#notice")).to_contain_text("banned", timeout=15_000)
    expect(page.locator("body")).to_have_attribute("data-socket", "closed")
    page.get_by_label("Message").fill("Am I still here?")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("banned")
    expect(page.get_by_label("Message")).to_have_value("Am I still here?")
    stored = stack.stored_messages(page.url.rstrip("/").rsplit("/", 1)[1])
    assert [(m["role"], m["content"]) for m in stored][:1] == [("user", f"Bring the {PHRASE} tonight")]
    assert len(stored) == 2
    # And the next page they open logs them out.
    page.reload()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
