"""SIGNUP_MODE (open, closed, approval, domains), its start-up check, and invitations."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from tests.webapp.test_settings import settings_in_a_fresh_process
from webapp.accounts.models import Account, Invitation
from webapp.accounts.signup import hash_token, invitation_create
from webapp.accounts.signup_settings import SignupSettingsError, check_signup_settings

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-Passw0rd!"


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_up(client: Client, username: str = "carol", url: str = "/accounts/signup/", **extra: str):
    return client.post(url, {"username": username, "password1": PASSWORD, "password2": PASSWORD, **extra})


def log_in(client: Client, username: str = "carol"):
    return client.post("/accounts/login/", {"username": username, "password": PASSWORD})


def users() -> int:
    return get_user_model().objects.count()


# --- the settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "domains", "expected"),
    [
        ("", "", ("open", ())),
        ("Approval", "", ("approval", ())),
        ("domains", " Example.COM , example.org.,example.com", ("domains", ("example.com", "example.org"))),
        ("closed", "xn--80ak6aa92e.com", ("closed", ("xn--80ak6aa92e.com",))),
    ],
)
def test_good_signup_settings(mode, domains, expected) -> None:
    assert check_signup_settings(mode, domains) == expected


@pytest.mark.parametrize(
    ("mode", "domains", "error"),
    [
        ("invite-only", "", "SIGNUP_MODE: 'invite-only' is not one of"),
        ("domains", "", "needs SIGNUP_DOMAINS"),
        ("domains", "@example.com", "'@example.com' is not a domain"),
        ("domains", "example.com,,example.org", "an empty item"),
        ("open", "*.example.com", "is not a domain"),
        ("domains", "localhost", "is not a domain"),
        ("domains", "exa mple.com", "is not a domain"),
        ("domains", "-bad.com", "is not a domain"),
        ("domains", "10.0.0.1", "is not a domain"),
        ("domains", "example.com;drop", "is not a domain"),
    ],
)
def test_junk_signup_settings_are_refused_with_the_reason(mode, domains, error) -> None:
    with pytest.raises(SignupSettingsError, match=error):
        check_signup_settings(mode, domains)


def test_the_site_refuses_to_start_with_junk_in_the_domain_list(tmp_path) -> None:
    result = settings_in_a_fresh_process(
        tmp_path / "absent", DEBUG="1", SIGNUP_MODE="domains", SIGNUP_DOMAINS="example.com,not a domain"
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: SIGNUP_DOMAINS: 'not a domain' is not a domain name" in result.stderr


# --- the modes -------------------------------------------------------------------------------------


def test_open_signs_up_and_logs_in(settings) -> None:
    settings.SIGNUP_MODE = "open"
    client = Client()
    assert sign_up(client).status_code == 302
    assert client.get("/c/").status_code == 200
    assert Account.objects.get().created_via == "signup"


def test_closed_refuses_with_a_page_and_creates_nothing(settings) -> None:
    settings.SIGNUP_MODE = "closed"
    page = Client().get("/accounts/signup/")
    assert page.status_code == 403 and "ask an administrator" in page.content.decode()
    assert sign_up(Client()).status_code == 403
    assert users() == 0


def test_approval_makes_a_waiting_account_that_is_told_so_on_the_page_and_at_log_in(settings) -> None:
    settings.SIGNUP_MODE = "approval"
    client = Client()
    assert "wait for an administrator" in client.get("/accounts/signup/").content.decode()
    page = sign_up(client)
    assert page.status_code == 200 and "waits for an administrator's approval" in page.content.decode()
    assert "_auth_user_id" not in client.session
    carol = get_user_model().objects.get(username="carol")
    assert not carol.is_active and carol.account.approval == "pending"
    refused = log_in(client)
    assert refused.status_code == 200 and "waiting for an administrator" in refused.content.decode()
    # A wrong password learns nothing about the account.
    wrong = client.post("/accounts/login/", {"username": "carol", "password": "wrong-password"})
    assert (
        "waiting" not in wrong.content.decode() and "correct username and password" in wrong.content.decode()
    )


def test_a_deactivated_account_is_told_so_at_log_in() -> None:
    get_user_model().objects.create_user(username="dan", password=PASSWORD, is_active=False)
    assert "deactivated by an administrator" in log_in(Client(), "dan").content.decode()


def test_domains_requires_an_address_at_one_of_the_domains(settings) -> None:
    settings.SIGNUP_MODE, settings.SIGNUP_DOMAINS = "domains", ("example.com",)
    for email, error in [
        ("", "This field is required"),
        ("carol@evil.com", "addresses at example.com only"),
        ("carol@sub.example.com", "addresses at example.com only"),
        ("not-an-address", "Enter a valid email address"),
    ]:
        response = sign_up(Client(), email=email)
        assert response.status_code == 400 and error in response.content.decode(), email
    assert users() == 0
    assert sign_up(Client(), email="Carol@EXAMPLE.com").status_code == 302
    taken = sign_up(Client(), "carol2", email="carol@example.com")
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    assert users() == 1


# --- invitations -----------------------------------------------------------------------------------


@pytest.fixture
def administrator():
    return get_user_model().objects.create_user(username="root", password=PASSWORD, is_superuser=True)


def invite(administrator, **kwargs) -> str:
    _, token = invitation_create(administrator=administrator, days=kwargs.pop("days", 7), **kwargs)
    return f"/accounts/invitation/{token}/"


@pytest.mark.parametrize("mode", ["closed", "approval", "domains"])
def test_an_invitation_signs_up_whatever_the_mode_once(settings, administrator, mode) -> None:
    settings.SIGNUP_MODE, settings.SIGNUP_DOMAINS = mode, ("example.com",)
    staff = Group.objects.create(name="staff")
    link = invite(administrator, note="for Carol", group=staff)
    client = Client()
    assert client.get(link).status_code == 200
    assert sign_up(client, url=link).status_code == 302  # no e-mail asked, no approval waited for
    carol = get_user_model().objects.get(username="carol")
    assert carol.is_active and list(carol.groups.all()) == [staff]
    assert (carol.account.created_via, carol.account.approved_by) == ("invitation", administrator)
    invitation = Invitation.objects.get()
    assert invitation.used_by == carol and invitation.token_hash != link.split("/")[-2]
    again = Client()
    for response in (again.get(link), sign_up(again, "mallory", url=link)):
        assert response.status_code == 410 and "already been used" in response.content.decode()
    assert users() == 2


def test_an_expired_or_unknown_invitation_gets_a_clear_page(administrator) -> None:
    link = invite(administrator)
    Invitation.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    for response in (Client().get(link), sign_up(Client(), url=link)):
        assert response.status_code == 410 and "This invitation expired on" in response.content.decode()
    unknown = Client().get("/accounts/invitation/not-a-real-token/")
    assert unknown.status_code == 404 and "not valid" in unknown.content.decode()
    assert users() == 1


def test_only_the_hash_of_the_token_is_stored(administrator) -> None:
    invitation, token = invitation_create(administrator=administrator, days=1)
    assert invitation.token_hash == hash_token(token) and token not in invitation.token_hash
