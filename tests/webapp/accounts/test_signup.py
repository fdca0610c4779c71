"""Sign-up, log-in, log-out, and the first administrator."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def test_sign_up_logs_in_and_lands_on_the_conversations() -> None:
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "password1": "a-long-Passw0rd!", "password2": "a-long-Passw0rd!"},
    )
    assert response.status_code == 302 and response["Location"] == "/c/"
    assert client.get("/c/").status_code == 200


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"username": "", "password1": "a-long-Passw0rd!", "password2": "a-long-Passw0rd!"}, "required"),
        ({"username": "dave", "password1": "a-long-Passw0rd!", "password2": "different-Passw0rd!"}, "didn"),
        ({"username": "dave", "password1": "123", "password2": "123"}, "too short"),
        (
            {"username": "x" * 151, "password1": "a-long-Passw0rd!", "password2": "a-long-Passw0rd!"},
            "at most 150",
        ),
        (
            {"username": "bad name!", "password1": "a-long-Passw0rd!", "password2": "a-long-Passw0rd!"},
            "valid username",
        ),
    ],
)
def test_bad_sign_ups_are_refused_with_a_reason(fields: dict, error: str) -> None:
    response = Client().post("/accounts/signup/", fields)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not get_user_model().objects.exists()


def test_a_taken_username_is_refused() -> None:
    get_user_model().objects.create_user(username="erin", password="x")
    response = Client().post(
        "/accounts/signup/",
        {"username": "erin", "password1": "a-long-Passw0rd!", "password2": "a-long-Passw0rd!"},
    )
    assert response.status_code == 400 and "already exists" in response.content.decode()


def test_log_out_is_a_post_and_ends_the_session() -> None:
    user = get_user_model().objects.create_user(username="fay", password="x")
    client = Client()
    client.force_login(user)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/c/").status_code == 302


def test_ensure_admin_creates_one_superuser_once_and_prints_the_password() -> None:
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    admin = get_user_model().objects.get(is_superuser=True)
    password = out.getvalue().split("password '")[1].split("'")[0]
    assert admin.username == "admin" and admin.check_password(password)
    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert again.getvalue() == "" and get_user_model().objects.filter(is_superuser=True).count() == 1
