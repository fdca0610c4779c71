"""LDAP sign-in against Debian's slapd started by the test: the log-in form, accounts made our way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tests.support.ldap_server import SUFFIX, group, person, slapd
from tests.support.stack import free_port
from webapp.accounts.ldap_settings import LdapSettingsError, ldap_settings
from webapp.accounts.models import Account, SsoIdentity

pytestmark = pytest.mark.django_db
LENA = "lena-Passw0rd!"
PASSWORD = "a-long-Passw0rd!"
BACKENDS = ["webapp.accounts.ldap_backend.DirectoryBackend", "django.contrib.auth.backends.ModelBackend"]


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    entries = [person("lena", LENA, "lena@example.com"), person("max", "max-Passw0rd!", "max@example.com")]
    with slapd(
        tmp_path_factory.mktemp("ldap"), [*entries, group("team", "lena"), group("wizards", "lena")]
    ) as uri:
        yield uri


def use_directory(settings, uri: str, **env: str) -> None:
    found = ldap_settings(
        {
            "LDAP_SERVER_URI": uri,
            "LDAP_USER_DN_TEMPLATE": f"uid=%(user)s,ou=people,{SUFFIX}",
            "LDAP_GROUP_SEARCH_BASE": f"ou=groups,{SUFFIX}",
            **env,
        }
    )
    for name, value in found.items():
        setattr(settings, name, value)
    settings.LDAP_SERVER_URI, settings.AUTHENTICATION_BACKENDS = uri, BACKENDS
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def ldap_on(settings, directory: str) -> None:
    use_directory(settings, directory)


def log_in(client: Client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_a_directory_password_makes_the_account_and_logs_in(client: Client, ldap_on: None) -> None:
    Group.objects.create(name="team")
    response = log_in(client, "lena", LENA)
    assert response.status_code == 302 and response["Location"] == "/c/"
    lena = get_user_model().objects.get(username="lena")
    assert lena.email == "lena@example.com" and not lena.has_usable_password()
    assert list(lena.groups.values_list("name", flat=True)) == ["team"]  # "wizards" is not a group here
    assert not Group.objects.filter(name="wizards").exists()
    assert SsoIdentity.objects.get(provider="ldap").subject == f"uid=lena,ou=people,{SUFFIX}"
    assert Account.objects.get(user=lena).created_via == "sso"
    client.logout()
    assert log_in(client, "lena", LENA).status_code == 302 and get_user_model().objects.count() == 1


def test_a_wrong_password_changes_nothing(client: Client, ldap_on: None) -> None:
    response = log_in(client, "lena", "wrong")
    assert response.status_code == 200 and b"correct username and password" in response.content
    assert not get_user_model().objects.exists()


def test_the_directory_s_address_links_an_existing_account(client: Client, ldap_on: None) -> None:
    old = get_user_model().objects.create_user("lena.old", email="lena@example.com", password=PASSWORD)
    assert log_in(client, "lena", LENA).status_code == 302
    assert SsoIdentity.objects.get(provider="ldap").user == old and get_user_model().objects.count() == 1


def test_a_local_account_of_the_same_name_is_not_taken(client: Client, ldap_on: None) -> None:
    get_user_model().objects.create_user("lena", email="someone@else.org", password=PASSWORD)
    assert log_in(client, "lena", LENA).status_code == 302
    assert SsoIdentity.objects.get(provider="ldap").user.username == "lena-2"
    client.logout()
    assert log_in(Client(), "lena", PASSWORD).status_code == 302  # the local one still logs in locally


def test_approval_mode_makes_the_directory_account_wait(client: Client, ldap_on: None, settings) -> None:
    settings.SIGNUP_MODE = "approval"
    response = log_in(client, "lena", LENA)
    assert response.status_code == 200 and b"waiting for an administrator" in response.content
    assert not get_user_model().objects.get(username="lena").is_active


def test_local_login_off_leaves_the_directory_only(client: Client, ldap_on: None, settings) -> None:
    settings.LOCAL_LOGIN = False
    get_user_model().objects.create_user("carol", password=PASSWORD)
    assert b'name="password"' in client.get("/accounts/login/").content
    assert log_in(client, "carol", PASSWORD).status_code == 200  # a local password: refused
    assert log_in(client, "lena", LENA).status_code == 302


def test_a_directory_that_is_down_says_so(client: Client, settings) -> None:
    use_directory(settings, f"ldap://127.0.0.1:{free_port()}/", LDAP_TIMEOUT_S="2")
    response = log_in(client, "lena", LENA)
    assert response.status_code == 200 and b"directory does not answer" in response.content
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LDAP_SERVER_URI": "http://x"}, "ldap:// or ldaps://"),
        ({}, "one of LDAP_USER_DN_TEMPLATE or LDAP_USER_SEARCH_BASE"),
        ({"LDAP_USER_DN_TEMPLATE": "uid=lena,dc=x"}, "must contain %\\(user\\)s"),
        ({"LDAP_USER_SEARCH_BASE": "not a dn"}, "is not a DN"),
        (
            {"LDAP_USER_SEARCH_BASE": "dc=x", "LDAP_USER_FILTER": "(uid=lena)"},
            "LDAP_USER_FILTER must contain",
        ),
        (
            {"LDAP_USER_SEARCH_BASE": "dc=x", "LDAP_GROUP_SEARCH_BASE": "dc=x", "LDAP_GROUP_TYPE": "ad"},
            "LDAP_GROUP_TYPE",
        ),
        ({"LDAP_USER_SEARCH_BASE": "dc=x", "LDAP_TIMEOUT_S": "soon"}, "LDAP_TIMEOUT_S"),
    ],
)
def test_junk_settings_refuse_to_start(env: dict[str, str], words: str) -> None:
    with pytest.raises(LdapSettingsError, match=words):
        ldap_settings({"LDAP_SERVER_URI": "ldap://ldap.example.com", **env})


def test_a_search_and_a_bind_account_work_too(client: Client, settings, directory: str) -> None:
    use_directory(
        settings,
        directory,
        LDAP_USER_DN_TEMPLATE="",
        LDAP_USER_SEARCH_BASE=f"ou=people,{SUFFIX}",
        LDAP_BIND_DN=f"cn=admin,{SUFFIX}",
        LDAP_BIND_PASSWORD="admin-secret",
    )
    assert log_in(client, "max", "max-Passw0rd!").status_code == 302


def test_the_site_refuses_to_start_with_bad_ldap_settings(tmp_path) -> None:
    from tests.webapp.test_settings import settings_in_a_fresh_process

    result = settings_in_a_fresh_process(
        tmp_path / "absent", DEBUG="1", LDAP_SERVER_URI="ldap://ldap.example.com"
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: LDAP needs one of LDAP_USER_DN_TEMPLATE" in result.stderr
