"""The account page: how long to keep my conversations, never longer than the deployment's limit."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.accounts.models import AccountSettings
from webapp.accounts.retention_choice import effective_retention_days, retention_choices

pytestmark = pytest.mark.django_db


@pytest.fixture
def carol():
    return get_user_model().objects.create_user(username="carol", password="x")


@pytest.fixture
def page(carol) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(carol)
    return client


def chosen(user) -> int | None:
    return AccountSettings.objects.filter(user=user).values_list("retention_days", flat=True).first()


def test_the_page_needs_a_login() -> None:
    response = Client().get("/accounts/settings/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_with_no_limit_every_choice_is_offered_and_the_default_keeps_for_ever(page: Client) -> None:
    html = page.get("/accounts/settings/").content.decode()
    for days in (30, 90, 365):
        assert f'<option value="{days}">{days} days</option>' in html
    assert "Never: keep them" in html and "kept until you delete them" in html


def test_only_choices_shorter_than_the_limit_are_offered(page: Client, settings) -> None:
    settings.RETENTION_DAYS = 90
    assert retention_choices() == [30]
    html = page.get("/accounts/settings/").content.decode()
    assert '<option value="30">' in html and '<option value="365">' not in html
    assert "90 days (this server&#x27;s limit)" in html or "90 days (this server's limit)" in html


def test_a_choice_is_saved_shown_and_applied(page: Client, carol, settings) -> None:
    settings.RETENTION_DAYS = 90
    response = page.post("/accounts/settings/", {"retention_days": "30"})
    assert response.status_code == 302 and chosen(carol) == 30
    html = page.get("/accounts/settings/").content.decode()
    assert '<option value="30" selected>' in html and "deleted after 30 days untouched" in html
    assert effective_retention_days(carol) == 30
    # Back to the deployment's own limit.
    page.post("/accounts/settings/", {"retention_days": ""})
    assert chosen(carol) is None and effective_retention_days(carol) == 90


@pytest.mark.parametrize("value", ["365", "90", "7", "0", "-30", "30.0", " 30", "abc", "٣٠", "9" * 40])
def test_a_value_not_offered_is_refused_and_changes_nothing(
    page: Client, carol, settings, value: str
) -> None:
    settings.RETENTION_DAYS = 90
    AccountSettings.objects.create(user=carol, retention_days=30)
    response = page.post("/accounts/settings/", {"retention_days": value})
    assert response.status_code == 400
    assert "cannot be longer than this server keeps them" in response.content.decode()
    assert chosen(carol) == 30


def test_the_effective_time_is_the_shorter_of_the_two(carol, settings) -> None:
    assert effective_retention_days(carol) is None
    settings.RETENTION_DAYS = 90
    assert effective_retention_days(carol) == 90
    AccountSettings.objects.create(user=carol, retention_days=365)  # stored before the limit was lowered
    assert effective_retention_days(carol) == 90
    AccountSettings.objects.filter(user=carol).update(retention_days=30)
    assert effective_retention_days(carol) == 30


def test_the_page_is_linked_from_every_page(page: Client) -> None:
    assert 'href="/accounts/settings/"' in page.get("/c/").content.decode()
