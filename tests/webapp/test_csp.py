"""The Content-Security-Policy header: on every page of the site, as the browser receives it.

The routes come from the URL configuration (tests/webapp/test_security.py), so a
page added later is checked without anybody adding it here. The browser side
(nothing inline runs, the pages cause no violation) is tests/browser/test_csp.py.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.webapp import test_security
from tests.webapp.test_security import fill, routes

# The security tests' people and things, and their fast password hashing.
alice_and_her_conversation = test_security.alice_and_her_conversation
fast_passwords = test_security.fast_passwords

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def assert_strict(policy: dict[str, list[str]]) -> None:
    assert policy["default-src"] == ["'self'"]
    # Scripts and styles from our own files only: no 'unsafe-inline', no other origin.
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]  # the page's own websocket (CSP Level 3)
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]


@pytest.fixture
def staff_client(alice_and_her_conversation) -> Client:
    alice, _ = alice_and_her_conversation
    alice.is_staff = alice.is_superuser = True  # so the moderation and admin pages render too
    alice.save()
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture(autouse=True)
def production_error_pages(settings) -> None:
    # django-csp leaves Django's DEBUG error pages (inline styles) without a policy.
    settings.DEBUG = False


@pytest.mark.parametrize("route", routes())
def test_every_page_sends_the_policy(route: str, staff_client: Client, alice_and_her_conversation) -> None:
    _, conversation = alice_and_her_conversation
    response = staff_client.get(fill(route, conversation))
    assert response.status_code < 500, (route, response.status_code)
    assert_strict(directives(response))


@pytest.mark.parametrize(
    "path",
    ["/accounts/login/", "/accounts/signup/", "/healthz", "/no/such/page/", "/admin/login/", "/c/"],
)
def test_pages_for_people_not_logged_in_and_errors_send_it_too(path: str) -> None:
    response = Client().get(path)
    assert_strict(directives(response))


def test_the_admin_pages_send_it(staff_client: Client) -> None:
    user_id = get_user_model().objects.get().pk
    for path in [
        "/admin/",
        "/admin/chat/conversation/",
        f"/admin/auth/user/{user_id}/change/",
        "/admin/auth/user/add/",
    ]:
        response = staff_client.get(path)
        assert response.status_code == 200, path
        assert_strict(directives(response))


def test_the_html_export_keeps_its_own_stricter_policy(
    staff_client: Client, alice_and_her_conversation
) -> None:
    _, conversation = alice_and_her_conversation
    response = staff_client.get(f"/c/{conversation.id}/export/html/")
    policy = directives(response)
    # Its one inline <style> (the file works offline), and nothing else at all: no script.
    assert policy == {
        "default-src": ["'none'"],
        "style-src": ["'unsafe-inline'"],
        "frame-ancestors": ["'none'"],
    }
