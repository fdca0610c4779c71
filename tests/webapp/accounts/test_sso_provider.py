"""Single sign-on against a real OpenID Connect provider process (django-oauth-toolkit, tests/support/oidc_provider).

The site runs in this process (Django's test client); the provider is its
own process on a free port, with its own keys, users and log-in page, which
`requests` fills in as a person would.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tests.support.oidc_provider.process import oidc_provider
from tests.support.oidc_tokens import PROVIDER
from tests.support.stack import free_port
from webapp.accounts import oidc_client
from webapp.accounts.oidc_settings import OidcProvider

pytestmark = pytest.mark.django_db
CALLBACK = "http://testserver/accounts/sso/dot/callback/"
PEOPLE = {
    "dora": {
        "password": "dora-Passw0rd!",
        "email": "dora@example.com",
        "email_verified": True,
        "groups": ["team"],
    }
}


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    client = {"client_id": "mistral-chat", "client_secret": "provider-s3cret", "redirect_uri": CALLBACK}
    with oidc_provider(tmp_path_factory.mktemp("oidc"), port=free_port(), users=PEOPLE, client=client) as url:
        yield url


def provider_at(issuer: str) -> OidcProvider:
    return dataclasses.replace(
        PROVIDER, id="dot", label="DOT", issuer=issuer, client_secret="provider-s3cret"
    )


def sign_in_at_the_provider(authorize_url: str, username: str, password: str) -> str:
    """What a person does at the provider's page; returns where it sends the browser back to."""
    browser = requests.Session()
    page = browser.get(authorize_url, timeout=10)  # redirected to its log-in page
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    next_url = re.search(r'name="next" value="([^"]*)"', page.text).group(1).replace("&amp;", "&")
    answer = browser.post(
        page.url,
        data={"csrfmiddlewaretoken": token, "username": username, "password": password, "next": next_url},
        headers={"Referer": page.url},
        allow_redirects=False,
        timeout=10,
    )
    location = answer.headers["Location"]
    while not location.startswith(CALLBACK):  # the authorize endpoint again, now signed in
        answer = browser.get(urljoin(answer.url, location), allow_redirects=False, timeout=10)
        location = answer.headers["Location"]
    return location


def test_sign_in_at_a_real_provider_lands_in_the_chat(issuer: str, settings) -> None:
    settings.OIDC_PROVIDERS = (provider_at(issuer),)
    oidc_client._client.cache_clear()
    Group.objects.create(name="team")
    client = Client()
    begin = client.get("/accounts/sso/dot/")
    assert begin.status_code == 302 and begin["Location"].startswith(issuer)
    back = sign_in_at_the_provider(begin["Location"], "dora", PEOPLE["dora"]["password"])
    landed = client.get(urlsplit(back).path + "?" + urlsplit(back).query, follow=True)
    assert landed.redirect_chain[-1][0].startswith("/c/")
    dora = get_user_model().objects.get(username="dora")
    assert landed.wsgi_request.user == dora and dora.email == "dora@example.com"
    assert list(dora.groups.values_list("name", flat=True)) == ["team"]


def test_a_provider_that_is_down_gets_a_clear_page(settings) -> None:
    settings.OIDC_PROVIDERS = (provider_at(f"http://127.0.0.1:{free_port()}/o"),)  # nothing listens there
    oidc_client._client.cache_clear()
    response = Client().get("/accounts/sso/dot/")
    assert response.status_code == 502 and b"does not answer right now" in response.content
