"""Who may use /moderation/: anonymous visitors log in first, non-staff get 403 everywhere, actions need CSRF."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.webapp.moderation.dashboard_support import fast_passwords, make_event, make_person  # noqa: F401
from webapp.moderation import urls as moderation_urls
from webapp.moderation.forms import ITEM_ACTIONS
from webapp.moderation.models import AuditLogEntry, ModerationEvent, Rule, Sanction
from webapp.sharing.services import share_link_create

pytestmark = pytest.mark.django_db

# Every URL and every action of the dashboard: (url name, method, form fields).
REQUESTS = [
    ("queue", "get", {}),
    ("stats", "get", {}),
    ("feedback", "get", {}),
    ("policies", "get", {}),
    ("shares", "get", {}),
    ("take_down_share", "post", {}),
    ("policies", "post", {"category": "health", "action": "block", "threshold": "0.3"}),
    *[("act", "post", {"action": action, "duration": "24"}) for action in ITEM_ACTIONS],
    (
        "rule_create",
        "post",
        {"phrase": "a bad phrase", "category": "violence_and_threats", "action": "block"},
    ),
]
IDS = [f"{name}-{method}-{fields.get('action', '')}" for name, method, fields in REQUESTS]


def test_every_dashboard_url_is_covered() -> None:
    assert {name for name, _, _ in REQUESTS} == {pattern.name for pattern in moderation_urls.urlpatterns}


@pytest.fixture
def event(reply) -> ModerationEvent:
    return make_event(reply)


def _request(client: Client, name: str, method: str, fields: dict, event: ModerationEvent):
    if method == "post":
        fields = {**fields, "items": f"event:{event.pk}"} if name == "act" else fields
    if name == "take_down_share":  # a live link to the flagged conversation
        conversation = event.message.conversation
        link, _ = share_link_create(owner=conversation.owner, conversation=conversation, audience="public")
        return getattr(client, method)(reverse(f"moderation:{name}", args=[link.pk]), fields)
    return getattr(client, method)(reverse(f"moderation:{name}"), fields)


@pytest.mark.parametrize(("name", "method", "fields"), REQUESTS, ids=IDS)
def test_anonymous_is_sent_to_log_in(name, method, fields, event) -> None:
    response = _request(Client(), name, method, fields, event)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=/moderation/")
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize(("name", "method", "fields"), REQUESTS, ids=IDS)
@pytest.mark.parametrize("wrong_method", [False, True], ids=["", "other-method"])
def test_non_staff_get_403(name, method, fields, wrong_method, event, bob) -> None:
    client = Client()
    client.force_login(make_person("carol"))
    method = {"get": "post", "post": "get"}[method] if wrong_method else method
    assert _request(client, name, method, fields, event).status_code == 403
    # The author of the item, logged in, is no better placed.
    client.force_login(bob)
    assert _request(client, name, method, fields, event).status_code == 403
    assert not AuditLogEntry.objects.exists() and not Rule.objects.exists() and not Sanction.objects.exists()
    event.refresh_from_db()
    assert event.status == "open"


@pytest.mark.parametrize(("name", "method", "fields"), REQUESTS, ids=IDS)
def test_staff_may(name, method, fields, event, moderator) -> None:
    client = Client()
    client.force_login(moderator)
    response = _request(client, name, method, fields, event)
    if method == "get":
        assert response.status_code == 200
    else:
        assert response.status_code == 302 and response["Location"] == reverse(
            {"policies": "moderation:policies", "take_down_share": "moderation:shares"}.get(
                name, "moderation:queue"
            )
        )
        assert AuditLogEntry.objects.filter(moderator=moderator).count() == 1


@pytest.mark.parametrize(("name", "method", "fields"), [r for r in REQUESTS if r[1] == "post"])
def test_actions_need_the_csrf_token(name, method, fields, event, moderator) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(moderator)
    assert _request(client, name, method, fields, event).status_code == 403
    assert not AuditLogEntry.objects.exists()
    # With the token from the page, the same request goes through.
    client.get(reverse("moderation:queue"))
    token = client.cookies["csrftoken"].value
    response = _request(client, name, method, {**fields, "csrfmiddlewaretoken": token}, event)
    assert response.status_code == 302
    assert AuditLogEntry.objects.count() == 1


@pytest.mark.parametrize("name", ["act", "rule_create"])
def test_staff_get_405_on_an_action(name, moderator) -> None:
    client = Client()
    client.force_login(moderator)
    assert client.get(reverse(f"moderation:{name}")).status_code == 405
