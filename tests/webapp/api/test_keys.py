"""API keys: stored hashed, shown once, revocable by their owner and by staff; the settings page."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from tests.webapp.chat.conftest import alice, logged_in
from webapp.api import services
from webapp.api.models import ApiKey

pytestmark = [pytest.mark.django_db]

PAGE = "/settings/api-keys/"


__all__ = ["alice", "logged_in"]  # the fixtures, shared with the chat tests


def test_only_the_hash_is_stored(alice) -> None:
    api_key, secret = services.api_key_create(owner=alice, name="  my   laptop ")
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {stored.key_hash, stored.prefix, stored.name} and secret.startswith(stored.prefix)
    assert stored.name == "my laptop" and len(secret) > 40


def test_authenticate(alice) -> None:
    api_key, secret = services.api_key_create(owner=alice, name="k")
    found = services.api_key_authenticate(authorization=f"Bearer {secret}")
    assert found == api_key and found.last_used_at is not None
    for header in ("", secret, f"Basic {secret}", f"Bearer {secret}x", "Bearer mck-" + "a" * 300):
        assert services.api_key_authenticate(authorization=header) is None, header
    alice.is_active = False
    alice.save()
    assert services.api_key_authenticate(authorization=f"Bearer {secret}") is None
    alice.is_active = True
    alice.save()
    services.api_key_revoke(api_key=api_key)
    assert services.api_key_authenticate(authorization=f"Bearer {secret}") is None


@pytest.mark.parametrize("name", ["", "   ", None, "x" * 101])
def test_bad_names_are_refused(alice, name) -> None:
    with pytest.raises(services.ApiKeyError):
        services.api_key_create(owner=alice, name=name)


def test_page_creates_shows_once_and_lists(logged_in: Client) -> None:
    created = logged_in.post(PAGE, {"name": "<script>alert(1)</script>"}, follow=True)
    assert created.redirect_chain == [(PAGE, 302)]
    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    secret = created.context["created"]["secret"]
    assert secret in created.content.decode()
    assert "<script>alert(1)</script>" not in created.content.decode()  # escaped
    listed = logged_in.get(PAGE).content.decode()
    assert secret not in listed and secret[:12] in listed and "&lt;script&gt;" in listed
    assert logged_in.post(PAGE, {"name": ""}).status_code == 400


def test_page_needs_login_and_csrf(alice) -> None:
    assert Client().get(PAGE).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(PAGE, {"name": "k"}).status_code == 403
    assert not ApiKey.objects.exists()


def test_revoke_own_key_only(alice, logged_in: Client) -> None:
    mine, _ = services.api_key_create(owner=alice, name="mine")
    bob = get_user_model().objects.create_user(username="bob", password="a-long-Passw0rd!")
    theirs, _ = services.api_key_create(owner=bob, name="theirs")
    assert logged_in.post(reverse("api:revoke", args=[theirs.pk])).status_code == 404
    assert logged_in.get(reverse("api:revoke", args=[mine.pk])).status_code == 405
    assert logged_in.post(reverse("api:revoke", args=[mine.pk])).status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None and theirs.revoked_at is None


def test_staff_revoke_any_key_in_the_admin(alice) -> None:
    api_key, _ = services.api_key_create(owner=alice, name="k")
    staff = get_user_model().objects.create_superuser(username="root", password="a-long-Passw0rd!")
    client = Client()
    client.force_login(staff)
    response = client.post(
        "/admin/api/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]}, follow=True
    )
    assert response.status_code == 200
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert client.get("/admin/api/apiconversation/").status_code == 200
    assert client.get("/admin/api/apikey/add/").status_code == 403  # keys are made by their owners


def test_create_api_key_command(alice) -> None:
    out = io.StringIO()
    call_command("create_api_key", "alice", "--name", "ci", stdout=out)
    secret = out.getvalue().strip()
    assert services.api_key_authenticate(authorization=f"Bearer {secret}").name == "ci"
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_key", "nobody")
    with pytest.raises(CommandError, match="name"):
        call_command("create_api_key", "alice", "--name", " ")


def test_at_most_so_many_live_keys(alice) -> None:
    keys = [services.api_key_create(owner=alice, name=f"k{i}")[0] for i in range(services.MAX_KEYS_PER_USER)]
    with pytest.raises(services.ApiKeyError, match="revoke"):
        services.api_key_create(owner=alice, name="one more")
    services.api_key_revoke(api_key=keys[0])
    assert services.api_key_create(owner=alice, name="one more")[0].name == "one more"
