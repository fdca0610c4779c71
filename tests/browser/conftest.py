"""Headless Chromium (Debian's package) driven by Playwright; no browser download.

The pages run under their real Content-Security-Policy, and a violation fails
the test. So `page.wait_for_function` takes an arrow function ("() => ..."):
Playwright evals a bare expression again on each poll, in the page, which the
policy (no 'unsafe-eval') refuses; a function is evaled once, by DevTools.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install chromium).")
    return path


# Module scope, not session: Playwright's sync API keeps an event loop running
# in this thread while it is open, and the async tests that follow need it closed.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            launched.close()


# Each violation of the Content-Security-Policy, as the page's own event reports it; Chromium
# also logs each as a console error ("... violates the following Content Security Policy
# directive ..."), which catches what no listener in the page sees (a refused frame).
CSP_LISTENER = """document.addEventListener("securitypolicyviolation", (event) =>
  window.__cspViolation(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile || location.href}:${event.lineNumber}`));"""


def watch_csp(page: Page, violations: list[str]) -> None:
    """Collect every CSP violation on this page into `violations`: a browser test fails on any."""
    page.expose_function("__cspViolation", lambda report: violations.append(report))
    page.add_init_script(CSP_LISTENER)
    page.on("console", lambda message: _console_report(message, violations))


def _console_report(message: ConsoleMessage, violations: list[str]) -> None:
    if message.type == "error" and "Content Security Policy" in message.text:
        violations.append(f"{message.text} @ {message.location.get('url', '')}")


SANITIZER = "/static/vendor/dompurify/purify.es.mjs"


def accept_sanitizer_reports(violations: list[str]) -> None:
    """For a test that renders hostile text: the reports DOMPurify's own parse causes, and only those.

    DOMPurify parses the text in an inert document (DOMParser) that inherits the
    page's policy, and Chromium reports each event handler, style or <base> in it
    as refused, though nothing in that document could run and DOMPurify removes them.
    """
    unexpected = [violation for violation in violations if SANITIZER not in violation]
    assert not unexpected, f"CSP violations outside the sanitizer's parse: {unexpected}"
    violations.clear()


@pytest.fixture
def csp_violations() -> list[str]:
    """The page's CSP violations so far; a test that causes one on purpose checks and clears it."""
    return []


DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


# Desktop unless a test parametrizes it: `@pytest.mark.parametrize("page", [DESKTOP, PHONE], indirect=True)`.
@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, csp_violations: list[str]) -> Iterator[Page]:
    viewport = getattr(request, "param", DESKTOP)
    context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 700)
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    watch_csp(opened, csp_violations)
    try:
        yield opened
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not csp_violations, f"Content-Security-Policy violations on the page: {csp_violations}"
