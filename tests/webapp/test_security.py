"""Who may reach what over HTTP: logins, other people's ids (IDOR), CSRF, and the production settings.

The URL tests walk the URL configuration itself, so a route added later is
checked without anybody adding it here.
"""

from __future__ import annotations

import json
import re
import secrets

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.webapp.test_processes import run_python
from webapp.accounts.access import role_of
from webapp.accounts.models import Account, Invitation, Role
from webapp.api.models import ApiKey
from webapp.api.services import api_key_create
from webapp.chat.models import Conversation, Folder, Message
from webapp.moderation.models import AuditLogEntry
from webapp.sharing.models import ShareLink
from webapp.sharing.services import share_link_create

pytestmark = pytest.mark.django_db

# Open to anybody: logging in and signing up (an invitation too), the health probe, the root redirect;
# the metrics scrape has its own token or loopback check (tests/webapp/metrics/test_endpoint.py).
PUBLIC = {
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/invitation/{token}/",
    "/accounts/sso/{provider_id}/",
    "/accounts/sso/{provider_id}/callback/",
    "/admin/login/",
    "/healthz",
    "/",
    "/metrics",
}
# What a refusal may look like: a redirect to log in, or a 401/403/404/405.
REFUSED = {302, 401, 403, 404, 405}
# Every route's own parameters: the ids of Alice's things are filled in per test.
SAMPLE_VALUES = {
    "export_format": "json",
    "token": "not-a-token",
    "dimension": "people",
    "ident": "1",
    "provider_id": "no-such-provider",
}
# The OpenAI-compatible API takes a bearer key, never the session cookie, so CSRF cannot apply:
# a logged-in browser's POST there is refused as unauthenticated (401).
API_PREFIX = "/v1/"


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    # Dozens of people per run: the real hasher's cost is the point in production, not here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def routes() -> list[str]:
    """Every URL of the site with its parameters as `{name}`; the admin as its one entry point."""
    found: list[str] = []

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if text.startswith("admin/"):
                    found.append("/admin/")
                else:
                    walk(pattern.url_patterns, text)
            elif isinstance(pattern, URLPattern):
                found.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text).lstrip("^").rstrip("$"))

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


def fill(route: str, conversation: Conversation) -> str:
    """The route with the ids of Alice's conversation, her reply in it, her API key, herself and her group."""
    return route.format(
        conversation_id=conversation.id,
        message_id=conversation.messages.get(role="assistant").id,
        key_id=ApiKey.objects.get(owner=conversation.owner).id,
        user_id=conversation.owner_id,
        group_id=Group.objects.get(name="alice's group").id,
        link_id=ShareLink.objects.get(owner=conversation.owner).id,
        folder_id=Folder.objects.get(name="Alice's folder").id,
        **SAMPLE_VALUES,
    )


@pytest.fixture
def alice_and_her_conversation() -> tuple[object, Conversation]:
    alice = get_user_model().objects.create_user(username="alice", password="a-long-Passw0rd!")
    conversation = Conversation.objects.create(owner=alice, title="Alice's secret")
    Message.objects.create(conversation=conversation, role="user", content="my secret plan")
    Message.objects.create(conversation=conversation, role="assistant", content="a secret answer")
    api_key_create(owner=alice, name="alice's key")
    Group.objects.create(name="alice's group").user_set.add(alice)
    share_link_create(owner=alice, conversation=conversation, audience="public")
    Folder.objects.create(owner=alice, name="Alice's folder")
    return alice, conversation


def untouched(conversation: Conversation) -> bool:
    """Alice's conversation, her reply and her key are as they were: nothing reported, nothing revoked."""
    conversation.refresh_from_db()
    reply = conversation.messages.get(role="assistant")
    alice = get_user_model().objects.get(pk=conversation.owner_id)
    return (
        conversation.title == "Alice's secret"
        and (conversation.folder_id, conversation.pinned, conversation.archived_at) == (None, False, None)
        and list(Folder.objects.filter(owner=alice).values_list("name", flat=True)) == ["Alice's folder"]
        and conversation.messages.count() == 2
        and not reply.reports.exists()
        and ApiKey.objects.get(owner=conversation.owner).revoked_at is None
        and ShareLink.objects.get(owner=conversation.owner).is_live
        and alice.is_active
        and role_of(alice) == Role.USER
        and [g.name for g in alice.groups.all()] == ["alice's group"]
        and not AuditLogEntry.objects.exists()
        and not Invitation.objects.exists()
    )


def logged_in_as(username: str, role: str | None = None, **flags: bool) -> Client:
    user = get_user_model().objects.create_user(username=username, password="a-long-Passw0rd!", **flags)
    if role is not None:
        Account.objects.create(user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_the_walk_finds_the_routes_we_know() -> None:
    found = routes()
    for known in (
        "/c/",
        "/c/{conversation_id}/",
        "/c/{conversation_id}/export/{export_format}/",
        "/admin/",
        "/s/{token}/",
    ):
        assert known in found, found


@pytest.mark.parametrize("route", [r for r in routes() if r not in PUBLIC])
@pytest.mark.parametrize("method", ["get", "post"])
def test_every_page_needs_a_login(route: str, method: str, alice_and_her_conversation) -> None:
    _, conversation = alice_and_her_conversation
    response = getattr(Client(), method)(fill(route, conversation))
    assert response.status_code in REFUSED, (route, response.status_code)
    if response.status_code == 302:
        assert "/login/" in response["Location"], response["Location"]
    assert b"secret" not in b"".join(getattr(response, "streaming_content", [response.content]))


@pytest.mark.parametrize(
    "route",
    [
        r
        for r in routes()
        if "{conversation_id}" in r
        or "{key_id}" in r
        or "{folder_id}" in r
        or r.startswith("/shares/{link_id}")
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_person_s_things_are_not_found_at_any_url(
    route: str, method: str, alice_and_her_conversation
) -> None:
    _, conversation = alice_and_her_conversation
    mallory = logged_in_as("mallory")
    response = getattr(mallory, method)(fill(route, conversation), {"title": "pwned", "reason": "spam"})
    # 405 where the route takes no such method; never Alice's things, never a change to them.
    assert response.status_code in {404, 405}, (route, response.status_code)
    assert untouched(conversation)


def test_a_bulk_action_on_another_person_s_conversation_changes_nothing(alice_and_her_conversation) -> None:
    _, conversation = alice_and_her_conversation
    mallory = logged_in_as("mallory")
    folder = Folder.objects.get(name="Alice's folder")
    for action in ("archive", "pin", "delete", "move"):
        fields = {"action": action, "confirm": "1", "conversation": [conversation.id], "folder": folder.id}
        assert mallory.post("/c/bulk/", fields).status_code == 302
    assert untouched(conversation)


def test_staff_may_export_but_not_open_or_change_another_person_s_conversation(
    alice_and_her_conversation,
) -> None:
    _, conversation = alice_and_her_conversation
    staff = logged_in_as("sam", is_staff=True)
    assert staff.get(f"/c/{conversation.id}/export/json/").status_code == 200
    assert staff.get(f"/c/{conversation.id}/").status_code == 404
    assert staff.post(f"/c/{conversation.id}/delete/").status_code == 404
    assert Conversation.objects.filter(id=conversation.id).exists()


# --- roles ------------------------------------------------------------------------------------------

MODERATION, MANAGEMENT = "/moderation/", "/manage/"
# The least role each section needs; everything else is a person's own things, whatever their role.
SECTIONS = {MODERATION: Role.MODERATOR, MANAGEMENT: Role.ADMINISTRATOR}
RANK = {Role.USER: 0, Role.MODERATOR: 1, Role.ADMINISTRATOR: 2}


def section_of(route: str) -> str | None:
    return next((prefix for prefix in SECTIONS if route.startswith(prefix)), None)


@pytest.mark.parametrize(
    ("route", "role"),
    [
        (route, role)
        for route in routes()
        if section_of(route)
        for role in (Role.USER, Role.MODERATOR)
        if RANK[role] < RANK[SECTIONS[section_of(route)]]
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_each_role_is_refused_above_itself_and_nothing_changes(
    route: str, role: Role, method: str, alice_and_her_conversation
) -> None:
    _, conversation = alice_and_her_conversation
    client = logged_in_as("mallory", role=role.value)
    fields = {"role": "administrator", "groups": [], "name": "pwned", "days": "7", "action": "ban"}
    response = getattr(client, method)(fill(route, conversation), fields)
    assert response.status_code == 403, (route, role, response.status_code)
    assert untouched(conversation)


@pytest.mark.parametrize(
    ("role", "flags", "reaches"),
    [
        (None, {}, set()),
        ("moderator", {}, {MODERATION}),
        ("administrator", {}, {MODERATION, MANAGEMENT}),
        (None, {"is_staff": True}, {MODERATION, "/admin/"}),  # staff from before roles keep what they had
        (None, {"is_superuser": True, "is_staff": True}, {MODERATION, MANAGEMENT, "/admin/"}),
    ],
)
def test_each_role_reaches_its_sections(role, flags, reaches, alice_and_her_conversation) -> None:
    client = logged_in_as("sam", role=role, **flags)
    pages = {MODERATION: "/moderation/", MANAGEMENT: "/manage/users/", "/admin/": "/admin/"}
    for section, url in pages.items():
        response = client.get(url)
        if section in reaches:
            assert response.status_code == 200, (section, response.status_code)
        elif section == "/admin/":
            # Django's admin sends anybody who is not staff to its own log-in: moderators and administrators too.
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
        else:
            assert response.status_code == 403, (section, response.status_code)
    header = client.get("/c/").content.decode()
    assert ('href="/moderation/"' in header) == (MODERATION in reaches)
    assert ('href="/manage/users/"' in header) == (MANAGEMENT in reaches)


# --- CSRF ----------------------------------------------------------------------------------------


def csrf_case(route: str) -> object:
    # The API's async views close the thread's database connection after each call (Channels'
    # database_sync_to_async), which PostgreSQL tests survive only outside a test transaction.
    if route.startswith(API_PREFIX):
        return pytest.param(route, marks=pytest.mark.django_db(transaction=True))
    return route


@pytest.mark.parametrize("route", [csrf_case(r) for r in routes() if r not in {"/healthz", "/"}])
def test_every_post_without_a_csrf_token_is_refused(route: str, alice_and_her_conversation) -> None:
    alice, conversation = alice_and_her_conversation
    client = Client(enforce_csrf_checks=True)
    if route not in PUBLIC:
        client.force_login(alice)
    response = client.post(fill(route, conversation), {"title": "changed", "username": "x", "reason": "spam"})
    # 403 from the CSRF check, or 405 where the route takes no POST; the API refuses the session
    # itself (401); nothing changed either way.
    expected = {401, 405} if route.startswith(API_PREFIX) else {403, 405}
    assert response.status_code in expected, (route, response.status_code)
    assert untouched(conversation)
    assert get_user_model().objects.count() == 1


# --- login throttling ------------------------------------------------------------------------------


@pytest.fixture
def throttle_settings(settings):
    settings.REDIS_PREFIX = f"mchat-throttle-{secrets.token_hex(4)}"
    settings.LOGIN_FAILURES_LIMIT = 3
    settings.LOGIN_FAILURES_WINDOW_S = 120
    return settings


def log_in(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_too_many_failed_log_ins_get_429_with_retry_after(
    throttle_settings, alice_and_her_conversation
) -> None:
    client = Client()
    for _ in range(3):
        assert log_in(client, "alice", "wrong").status_code == 200  # the form again, with its error
    refused = log_in(client, "alice", "a-long-Passw0rd!")  # even the right password, while throttled
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 120
    assert "Too many failed log-ins" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address, or another username from this one, is not held back.
    assert log_in(Client(), "alice", "a-long-Passw0rd!", address="10.0.0.2").status_code == 302
    assert log_in(Client(), "ALICE ", "wrong", address="10.0.0.1").status_code == 429, (
        "case and spaces dodge it"
    )
    assert log_in(Client(), "bob", "wrong").status_code == 200


def test_a_successful_log_in_forgets_the_failures(throttle_settings, alice_and_her_conversation) -> None:
    for _ in range(2):
        log_in(Client(), "alice", "wrong")
    assert log_in(Client(), "alice", "a-long-Passw0rd!").status_code == 302
    for _ in range(2):
        assert log_in(Client(), "alice", "wrong").status_code == 200
    assert log_in(Client(), "alice", "a-long-Passw0rd!").status_code == 302


@pytest.mark.parametrize("username", ["", "x" * 100_000, "\x00💥<script>", "a" * 151])
def test_hostile_usernames_are_counted_not_crashed_on(username: str, throttle_settings) -> None:
    for _ in range(3):
        assert log_in(Client(), username, "wrong").status_code == 200
    assert log_in(Client(), username, "wrong").status_code == 429


def test_throttling_off_at_zero_and_open_when_redis_is_down(throttle_settings, monkeypatch) -> None:
    throttle_settings.LOGIN_FAILURES_LIMIT = 0
    for _ in range(5):
        assert log_in(Client(), "alice", "wrong").status_code == 200
    throttle_settings.LOGIN_FAILURES_LIMIT = 1
    throttle_settings.REDIS_URL = "redis://127.0.0.1:1/0"
    from webapp.chat import live

    live.redis_client.cache_clear()
    try:
        for _ in range(3):
            assert log_in(Client(), "alice", "wrong").status_code == 200
    finally:
        live.redis_client.cache_clear()


# --- production settings -------------------------------------------------------------------------

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k" * 30 + secrets.token_urlsafe(40),
    "ALLOWED_HOSTS": "chat.example.com",
}


def test_check_deploy_is_clean_with_production_settings() -> None:
    result = run_python(
        "import sys; from django.core.management import execute_from_command_line;"
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        DJANGO_SETTINGS_MODULE="webapp.settings",
        **PRODUCTION,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_headers_cookies_and_https_redirect() -> None:
    code = (
        "import os, json, django; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup();"
        "from django.test import Client; from django.test.utils import setup_test_environment;"
        "setup_test_environment(); c = Client(HTTP_HOST='chat.example.com');"
        "plain = c.get('/accounts/login/'); probe = c.get('/healthz');"
        "secure = c.get('/accounts/login/', secure=True);"
        "print(json.dumps({'plain': [plain.status_code, plain.get('Location')],"
        " 'probe': probe.status_code, 'headers': dict(secure.headers),"
        " 'cookie': {k: dict(v) for k, v in secure.cookies.items()}}))"
    )
    result = run_python(code, **PRODUCTION, DATABASE_URL="sqlite:///:memory:")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain"] == [301, "https://chat.example.com/accounts/login/"]
    assert seen["probe"] != 301, "the load balancer's health probe must not be redirected"
    headers = seen["headers"]
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    csrf = seen["cookie"]["csrftoken"]
    assert csrf["secure"] is True and csrf["samesite"] == "Lax"


def test_session_cookie_is_secure_and_http_only_in_production() -> None:
    result = run_python(
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_SECURE, s.DEBUG)",
        **PRODUCTION,
    )
    assert result.stdout.split() == ["True", "True", "True", "False"], result.stderr
