"""OIDC_PROVIDERS and LOCAL_LOGIN: checked at start-up, and what LOCAL_LOGIN=0 turns off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.support.oidc_tokens import PROVIDER
from tests.webapp.test_settings import settings_in_a_fresh_process
from webapp.accounts.oidc_settings import OidcProvider, OidcSettingsError, check_oidc_settings
from webapp.accounts.sso import claims_from

PASSWORD = "a-long-Passw0rd!"
GOOD = {
    "id": "keycloak",
    "issuer": "https://id.example.com/realms/acme",
    "client_id": "chat",
    "client_secret": "s",
}


def check(items: object, *, local_login: bool = True, allow_http: bool = False) -> tuple[OidcProvider, ...]:
    return check_oidc_settings(json.dumps(items), local_login=local_login, allow_http=allow_http)


# --- the start-up check ---------------------------------------------------------------------


def test_a_provider_with_defaults() -> None:
    (provider,) = check([GOOD])
    assert provider.label == "keycloak" and provider.scopes == "openid email profile"
    assert provider.metadata_url == "https://id.example.com/realms/acme/.well-known/openid-configuration"
    assert provider.groups_claim == ""


def test_several_providers_in_order() -> None:
    second = {**GOOD, "id": "google", "issuer": "https://accounts.google.com", "label": "Google"}
    assert [p.id for p in check([GOOD, second])] == ["keycloak", "google"]


def test_none_is_fine_with_local_accounts() -> None:
    assert check_oidc_settings("", local_login=True, allow_http=False) == ()


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{not json", "is not JSON"),
        (json.dumps({"id": "x"}), "must be a JSON list"),
        (json.dumps(["keycloak"]), "each provider is an object"),
        (json.dumps([{**GOOD, "secret": "s"}]), "unknown key 'secret'"),
        (json.dumps([{**GOOD, "client_id": ""}]), "'client_id' is required"),
        (json.dumps([{**GOOD, "client_secret": 5}]), "every value is a string"),
        (json.dumps([{**GOOD, "id": "Key Cloak"}]), "must be lower-case letters"),
        (json.dumps([{**GOOD, "issuer": "http://id.example.com"}]), "must be an https:// URL"),
        (json.dumps([{**GOOD, "issuer": "https://id.example.com/?x=1"}]), "without query or fragment"),
        (json.dumps([{**GOOD, "issuer": "id.example.com"}]), "must be an https:// URL"),
        (json.dumps([{**GOOD, "scopes": "email profile"}]), "must include 'openid'"),
        (json.dumps([GOOD, GOOD]), "two providers share an id"),
    ],
)
def test_junk_is_refused_with_its_reason(raw: str, words: str) -> None:
    with pytest.raises(OidcSettingsError, match=words.replace("(", r"\(").replace("?", r"\?")):
        check_oidc_settings(raw, local_login=True, allow_http=False)


def test_http_issuers_only_when_allowed() -> None:
    local = {**GOOD, "issuer": "http://127.0.0.1:9000/o"}
    assert check([local], allow_http=True)[0].issuer == "http://127.0.0.1:9000/o"


def test_local_login_off_needs_a_provider() -> None:
    with pytest.raises(OidcSettingsError, match="nobody could log in"):
        check_oidc_settings("", local_login=False, allow_http=False)


def test_the_site_refuses_to_start_with_a_bad_provider(tmp_path: Path) -> None:
    result = settings_in_a_fresh_process(tmp_path / "absent", DEBUG="1", OIDC_PROVIDERS='[{"id": "x"}]')
    assert result.returncode != 0
    assert "ImproperlyConfigured: OIDC_PROVIDERS[0]: 'issuer' is required" in result.stderr


# --- claims, hostile ones included ----------------------------------------------------------


def test_claims_are_read_defensively() -> None:
    claims = claims_from(
        PROVIDER,
        {"sub": "s", "email": " a@example.com ", "email_verified": "true", "groups": ["a", 5, "a", "b"]},
    )
    assert (claims.email, claims.email_verified, claims.groups) == ("a@example.com", True, ("a", "b"))
    assert claims_from(PROVIDER, {"sub": "s", "groups": "admins"}).groups == ()  # not a list: no groups
    assert claims_from(PROVIDER, {"sub": "s"}).groups is None  # no claim: groups stay as they are
    assert claims_from(PROVIDER, {"sub": "s", "email_verified": "yes"}).email_verified is False


@pytest.mark.parametrize("subject", [None, "", 5, "x" * 256])
def test_an_unusable_subject_is_refused(subject: object) -> None:
    from webapp.accounts.sso import SsoRefused

    with pytest.raises(SsoRefused, match="no usable subject"):
        claims_from(PROVIDER, {"sub": subject})


# --- LOCAL_LOGIN=0 --------------------------------------------------------------------------


@pytest.fixture
def sso_only(settings) -> None:
    settings.LOCAL_LOGIN, settings.OIDC_PROVIDERS = False, (PROVIDER,)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db
def test_the_login_page_shows_only_the_buttons(client: Client, sso_only: None) -> None:
    page = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/sso/test/"' in page and "Sign in with Test ID" in page
    assert 'name="password"' not in page and "/accounts/signup/" not in page


@pytest.mark.django_db
def test_with_local_login_on_both_show(client: Client, settings) -> None:
    settings.OIDC_PROVIDERS = (PROVIDER,)
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Test ID" in page and 'name="password"' in page


@pytest.mark.django_db
def test_password_login_is_refused(client: Client, sso_only: None) -> None:
    get_user_model().objects.create_user("carol", password=PASSWORD)
    response = client.post("/accounts/login/", {"username": "carol", "password": PASSWORD})
    assert response.status_code == 403 and b"Password log-in is off" in response.content
    assert client.get("/c/").status_code == 302  # not logged in


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/accounts/signup/", "/accounts/invitation/whatever/"])
def test_local_sign_up_is_refused(client: Client, sso_only: None, url: str) -> None:
    response = client.post(url, {"username": "dan", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 403 and b"single sign-on" in response.content
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_the_admin_s_password_form_is_off_too(client: Client, sso_only: None) -> None:
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/admin/").status_code == 302  # not logged in


@pytest.mark.django_db
def test_the_admin_s_password_form_stays_with_local_login(client: Client) -> None:
    assert b'name="password"' in client.get("/admin/login/").content
