"""Single sign-on in-process: real signed ID tokens from tests/support/oidc_tokens.py, every refused case."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tests.support.oidc_tokens import PROVIDER, FakeProvider
from webapp.accounts import oidc_client
from webapp.accounts.models import Account, SsoIdentity
from webapp.moderation.models import AuditLogEntry

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-Passw0rd!"
ALICE = {
    "sub": "alice-1",
    "email": "alice@example.com",
    "email_verified": True,
    "preferred_username": "alice",
}


@pytest.fixture(autouse=True)
def one_provider(settings) -> None:
    settings.OIDC_PROVIDERS = (PROVIDER,)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    oidc_client._client.cache_clear()  # each test its own discovery and keys


@pytest.fixture
def provider(monkeypatch) -> FakeProvider:
    return FakeProvider(claims=dict(ALICE)).install(monkeypatch)


def sign_in(client: Client, provider: FakeProvider, *, state: str | None = None, **claims: object):
    """Start at our button, then come back with the provider's answer; the final response."""
    begin = client.get(f"/accounts/sso/{PROVIDER.id}/")
    assert begin.status_code == 302, begin.content
    real_state = provider.remember_nonce(begin["Location"])
    provider.claims.update(claims)
    return client.get(
        f"/accounts/sso/{PROVIDER.id}/callback/", {"code": "c0de", "state": state or real_state}
    )


def users() -> int:
    return get_user_model().objects.count()


def logged_in_as(client: Client) -> str | None:
    response = client.get("/c/")
    return response.wsgi_request.user.get_username() if response.status_code == 200 else None


# --- the happy paths ---------------------------------------------------------------------


def test_first_sign_in_makes_an_account_and_logs_in(client: Client, provider: FakeProvider) -> None:
    response = sign_in(client, provider)
    assert response.status_code == 302 and response["Location"] == "/c/"
    user = get_user_model().objects.get(username="alice")
    assert user.email == "alice@example.com" and not user.has_usable_password()
    assert Account.objects.get(user=user).created_via == "sso"
    assert SsoIdentity.objects.get(provider="test", subject="alice-1").user == user
    assert logged_in_as(client) == "alice"


def test_the_authorize_redirect_asks_for_pkce_nonce_and_scopes(
    client: Client, provider: FakeProvider
) -> None:
    location = client.get(f"/accounts/sso/{PROVIDER.id}/")["Location"]
    assert location.startswith("https://id.example.test/authorize?")
    for part in (
        "code_challenge_method=S256",
        "nonce=",
        "state=",
        "scope=openid+email+profile",
        "client_id=mistral-chat",
    ):
        assert part in location


def test_the_same_subject_is_the_same_person_even_with_a_new_address(
    client: Client, provider: FakeProvider
) -> None:
    sign_in(client, provider)
    client.logout()
    sign_in(client, provider, email="alice@new.example.com")
    assert users() == 1 and logged_in_as(client) == "alice"


def test_a_verified_address_links_the_existing_account(client: Client, provider: FakeProvider) -> None:
    existing = get_user_model().objects.create_user("al", email="Alice@Example.com", password=PASSWORD)
    sign_in(client, provider)
    assert users() == 1 and logged_in_as(client) == "al"
    assert SsoIdentity.objects.get(subject="alice-1").user == existing


def test_a_provider_username_never_takes_an_existing_account(client: Client, provider: FakeProvider) -> None:
    get_user_model().objects.create_user("alice", email="other@example.org", password=PASSWORD)
    sign_in(client, provider)
    assert users() == 2 and logged_in_as(client) == "alice-2"


def test_closed_sign_up_admits_sso(client: Client, provider: FakeProvider, settings) -> None:
    settings.SIGNUP_MODE = "closed"
    assert sign_in(client, provider).status_code == 302 and users() == 1


def test_approval_mode_makes_the_account_wait(client: Client, provider: FakeProvider, settings) -> None:
    settings.SIGNUP_MODE = "approval"
    response = sign_in(client, provider)
    assert response.status_code == 403
    assert b"waits for an administrator" in response.content
    user = get_user_model().objects.get(username="alice")
    assert not user.is_active and Account.objects.get(user=user).approval == Account.Approval.PENDING
    assert logged_in_as(client) is None


def test_domains_mode_needs_a_verified_address_in_the_domains(
    client: Client, provider: FakeProvider, settings
) -> None:
    settings.SIGNUP_MODE, settings.SIGNUP_DOMAINS = "domains", ("example.com",)
    response = sign_in(client, provider, email="alice@elsewhere.org")
    assert response.status_code == 403 and b"example.com only" in response.content and users() == 0
    response = sign_in(Client(), provider, email="alice@example.com", email_verified=False)
    assert response.status_code == 403 and b"verified" in response.content and users() == 0
    assert sign_in(Client(), provider, email="alice@example.com", email_verified=True).status_code == 302
    assert users() == 1


# --- groups follow the claim -------------------------------------------------------------


def test_groups_follow_the_claim_and_unknown_ones_are_ignored(
    client: Client, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    Group.objects.create(name="interns")
    staff = Group.objects.create(name="staff")
    with caplog.at_level(logging.WARNING, logger="webapp.accounts.sso"):
        sign_in(client, provider, groups=["staff", "wizards"])
    user = get_user_model().objects.get(username="alice")
    assert list(user.groups.values_list("name", flat=True)) == ["staff"]
    assert not Group.objects.filter(name="wizards").exists()
    assert "wizards" in caplog.text
    entry = AuditLogEntry.objects.get(action="user_groups")
    assert entry.detail["after"] == ["staff"] and entry.detail["via"] == "sso:test"
    client.logout()
    sign_in(client, provider, groups=["interns"])  # the claim says who they are now
    assert list(user.groups.values_list("name", flat=True)) == ["interns"]
    assert staff.user_set.count() == 0


def test_no_groups_claim_leaves_groups_alone(client: Client, provider: FakeProvider) -> None:
    sign_in(client, provider)
    user = get_user_model().objects.get(username="alice")
    user.groups.add(Group.objects.create(name="staff"))
    client.logout()
    provider.claims.pop("groups", None)
    sign_in(client, provider)
    assert list(user.groups.values_list("name", flat=True)) == ["staff"]


# --- refused: a clear page, nothing changed ----------------------------------------------


def test_a_wrong_state_is_refused(client: Client, provider: FakeProvider) -> None:
    response = sign_in(client, provider, state="forged")
    assert response.status_code == 400 and b"not started from this browser" in response.content
    assert users() == 0 and logged_in_as(client) is None


def test_a_callback_without_a_sign_in_started_is_refused(client: Client, provider: FakeProvider) -> None:
    response = client.get(f"/accounts/sso/{PROVIDER.id}/callback/", {"code": "c", "state": "s"})
    assert response.status_code == 400 and users() == 0


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"aud": "someone-else"}, b"not meant for this site"),
        ({"iss": "https://evil.example"}, b"not meant for this site"),
        ({"nonce": "replayed"}, b"not meant for this site"),
        ({"exp": 1_000_000, "iat": 999_000}, b"has expired"),
    ],
    ids=["audience", "issuer", "nonce", "expired"],
)
def test_an_untrustworthy_token_is_refused(
    client: Client, provider: FakeProvider, claims: dict, words: bytes
) -> None:
    response = sign_in(client, provider, **claims)
    assert response.status_code == 400 and words in response.content, response.content
    assert users() == 0 and logged_in_as(client) is None


def test_a_token_signed_by_another_key_is_refused(client: Client, provider: FakeProvider) -> None:
    from joserfc.jwk import RSAKey

    provider.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    response = sign_in(client, provider)
    assert response.status_code == 400 and b"could not be checked" in response.content and users() == 0


def test_an_unverified_address_never_takes_over_an_account(client: Client, provider: FakeProvider) -> None:
    get_user_model().objects.create_user("al", email="alice@example.com", password=PASSWORD)
    response = sign_in(client, provider, email_verified=False)
    assert response.status_code == 403 and b"does not say the address is verified" in response.content
    assert users() == 1 and not SsoIdentity.objects.exists() and logged_in_as(client) is None


def test_a_token_without_a_subject_is_refused(client: Client, provider: FakeProvider) -> None:
    provider.claims.pop("sub")
    response = sign_in(client, provider)
    assert response.status_code == 400 and b"(sub)" in response.content and users() == 0


def test_the_provider_saying_no_is_shown(client: Client, provider: FakeProvider) -> None:
    client.get(f"/accounts/sso/{PROVIDER.id}/")
    response = client.get(
        f"/accounts/sso/{PROVIDER.id}/callback/",
        {"error": "access_denied", "error_description": "User said no"},
    )
    assert response.status_code == 400 and b"User said no" in response.content


def test_a_provider_that_is_down_gets_a_clear_page(client: Client, provider: FakeProvider) -> None:
    provider.down = True
    response = client.get(f"/accounts/sso/{PROVIDER.id}/")
    assert response.status_code == 502 and b"does not answer right now" in response.content


def test_a_provider_down_at_the_callback_changes_nothing(client: Client, provider: FakeProvider) -> None:
    begin = client.get(f"/accounts/sso/{PROVIDER.id}/")
    state = provider.remember_nonce(begin["Location"])
    provider.down = True
    response = client.get(f"/accounts/sso/{PROVIDER.id}/callback/", {"code": "c", "state": state})
    assert response.status_code == 502 and users() == 0


def test_an_unknown_provider_is_404(client: Client) -> None:
    assert client.get("/accounts/sso/nobody/").status_code == 404
    assert client.get("/accounts/sso/nobody/callback/").status_code == 404


@pytest.mark.parametrize("state", ["deactivated", "banned"])
def test_a_deactivated_or_banned_person_is_refused(
    client: Client, provider: FakeProvider, state: str
) -> None:
    from webapp.moderation.models import Sanction

    sign_in(client, provider)
    client.logout()
    user = get_user_model().objects.get(username="alice")
    if state == "deactivated":
        user.is_active = False
        user.save()
    else:
        Sanction.objects.create(user=user, kind=Sanction.Kind.BAN, reason="test", created_by=user)
    response = sign_in(client, provider)
    assert response.status_code == 403 and state.encode() in response.content
    assert logged_in_as(client) is None


def test_two_accounts_with_the_address_are_not_guessed_between(
    client: Client, provider: FakeProvider
) -> None:
    for name in ("al", "alice.b"):
        get_user_model().objects.create_user(name, email="alice@example.com", password=PASSWORD)
    response = sign_in(client, provider)
    assert response.status_code == 403 and b"More than one account" in response.content
    assert users() == 2 and not SsoIdentity.objects.exists()


def test_a_discovery_document_for_another_issuer_is_refused(client: Client, provider: FakeProvider) -> None:
    provider.issuer_in_discovery = "https://evil.example"
    response = client.get(f"/accounts/sso/{PROVIDER.id}/")
    assert response.status_code == 502 and b"its issuer differs" in response.content


def test_a_discovery_page_that_is_not_json_is_a_provider_down(client: Client, monkeypatch) -> None:
    import requests
    from authlib.integrations.requests_client import OAuth2Session

    def html_page(session, method: str, url: str, **kwargs: object) -> requests.Response:
        page = requests.Response()
        page.status_code, page._content = 200, b"<html>proxy login</html>"
        return page

    monkeypatch.setattr(OAuth2Session, "request", html_page)
    response = client.get(f"/accounts/sso/{PROVIDER.id}/")
    assert response.status_code == 502 and b"does not answer right now" in response.content


def test_an_unverified_address_is_not_kept_on_a_new_account(client: Client, provider: FakeProvider) -> None:
    sign_in(client, provider, email_verified=False)
    assert get_user_model().objects.get(username="alice").email == ""  # nobody can be linked to it later


def test_a_first_sign_in_that_lost_a_race_tries_once_more(provider: FakeProvider, monkeypatch) -> None:
    # The other tab's commit cannot be staged inside the test's transaction: the race is the
    # IntegrityError that the other tab's commit gives this one, and the retry finds its row.
    from django.db import IntegrityError

    from webapp.accounts import sso

    real, calls = sso._sign_in, []

    def lost_then_found(source, claims):
        calls.append(claims.subject)
        if len(calls) == 1:
            raise IntegrityError("UNIQUE constraint failed: accounts_ssoidentity.provider, subject")
        return real(source, claims)

    monkeypatch.setattr(sso, "_sign_in", lost_then_found)
    claims = sso.SsoClaims("alice-1", "alice@example.com", True, "alice", None)
    assert sso.sso_sign_in(provider=PROVIDER, claims=claims).user.username == "alice"
    assert calls == ["alice-1", "alice-1"] and SsoIdentity.objects.count() == 1


def test_the_person_page_says_how_they_sign_in(client: Client, provider: FakeProvider) -> None:
    from webapp.accounts.models import Role

    sign_in(client, provider)
    admin = get_user_model().objects.create_user("boss", password=PASSWORD)
    Account.objects.create(user=admin, role=Role.ADMINISTRATOR)
    manager = Client()
    manager.force_login(admin)
    alice = get_user_model().objects.get(username="alice")
    assert b'id="person-identities">test (last ' in manager.get(f"/manage/users/{alice.pk}/").content
    assert b'id="person-identities">a password<' in manager.get(f"/manage/users/{admin.pk}/").content
