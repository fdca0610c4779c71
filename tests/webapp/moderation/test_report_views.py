"""The report endpoint under /c/: what each kind of input gets."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.moderation.models import HiddenReply, Report

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


def url(message) -> str:
    return f"/c/{message.conversation_id}/m/{message.id}/report/"


def post(client: Client, path: str, data: dict, **headers):
    """POST with the CSRF token a page would carry."""
    client.get("/c/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    return client.post(path, {**data, "csrfmiddlewaretoken": token}, **headers)


def test_the_form_lists_the_reasons(bob_client, reply) -> None:
    page = bob_client.get(url(reply)).content.decode()
    for value in Report.Reason.values:
        assert f'value="{value}"' in page
    assert "csrfmiddlewaretoken" in page


def test_a_report_is_stored_and_a_repeat_returns_it(bob_client, bob, reply) -> None:
    first = post(bob_client, url(reply), {"reason": "harmful", "detail": "  it told me to  "}, **JSON)
    assert first.status_code == 200
    again = post(bob_client, url(reply), {"reason": "other"}, **JSON)
    assert again.json() == first.json() == {"id": Report.objects.get().pk, "status": "open"}
    report = Report.objects.get()
    assert (report.reporter, report.message, report.reason, report.detail) == (
        bob,
        reply,
        "harmful",
        "it told me to",
    )


def test_without_script_the_report_redirects_to_the_conversation(bob_client, reply) -> None:
    response = post(bob_client, url(reply), {"reason": "privacy"})
    assert response.status_code == 302 and response["Location"] == f"/c/{reply.conversation_id}/"
    assert Report.objects.filter(reason="privacy").exists()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"reason": "boring"}, "invalid_reason"),
        ({"reason": ""}, "invalid_reason"),
        ({}, "invalid_reason"),
        ({"reason": "<script>alert(1)</script>"}, "invalid_reason"),
        ({"reason": "other", "detail": "x" * 1001}, "detail_too_long"),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(bob_client, reply, data, code) -> None:
    response = post(bob_client, url(reply), data, **JSON)
    assert response.status_code == 400 and response.json()["code"] == code
    page = post(bob_client, url(reply), data)  # the form again, with the error, no script
    assert page.status_code == 400 and b"<script>alert" not in page.content
    assert not Report.objects.exists()


def test_an_empty_detail_is_fine(bob_client, reply) -> None:
    assert post(bob_client, url(reply), {"reason": "other", "detail": "   "}, **JSON).status_code == 200
    assert Report.objects.get().detail == ""


def test_a_user_message_cannot_be_reported(bob_client, question) -> None:
    response = post(bob_client, url(question), {"reason": "other"}, **JSON)
    assert response.status_code == 400 and response.json()["code"] == "not_a_reply"
    assert not Report.objects.exists()


def test_somebody_elses_reply_is_not_found(reply) -> None:
    mallory = get_user_model().objects.create_user(username="mallory", password="x" * 12)
    client = Client()
    client.force_login(mallory)
    assert client.get(url(reply)).status_code == 404
    assert post(client, url(reply), {"reason": "other"}, **JSON).status_code == 404
    assert not Report.objects.exists()


@pytest.mark.parametrize("message_id", ["nope", "00000000-0000-0000-0000-000000000000"])
def test_unknown_message_is_not_found(bob_client, reply, message_id) -> None:
    path = f"/c/{reply.conversation_id}/m/{message_id}/report/"
    assert post(bob_client, path, {"reason": "other"}, **JSON).status_code == 404


def test_a_hidden_reply_is_not_found(bob_client, reply, moderator) -> None:
    HiddenReply.objects.create(message=reply, hidden_by=moderator)
    assert post(bob_client, url(reply), {"reason": "other"}, **JSON).status_code == 404


def test_without_csrf_token_the_post_is_forbidden(bob_client, reply) -> None:
    response = bob_client.post(url(reply), {"reason": "harmful"}, **JSON)
    assert response.status_code == 403
    assert not Report.objects.exists()


def test_logged_out_goes_to_login(reply) -> None:
    response = Client().post(url(reply), {"reason": "harmful"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not Report.objects.exists()


def test_the_chat_page_loads_the_report_script(bob_client, reply) -> None:
    page = bob_client.get(f"/c/{reply.conversation_id}/").content.decode()
    assert "js/report.js" in page
