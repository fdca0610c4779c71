"""Share links over HTTP: making one, the shared page (noindex, 404s alike, sign-in), continuing, revoke, staff."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.webapp.sharing.conftest import client_of, person
from webapp.chat.models import Conversation
from webapp.moderation.models import AuditLogEntry
from webapp.sharing.models import ShareLink

pytestmark = pytest.mark.django_db


def create(client: Client, conversation: Conversation, audience: str = "public") -> str:
    """Share from the chat page's form; the token, from the one time the list shows the URL."""
    response = client.post(f"/c/{conversation.id}/share/", {"audience": audience})
    assert response.status_code == 302 and response["Location"] == "/shares/"
    listing = client.get("/shares/")
    url = listing.context["new_link"]["url"]
    assert listing["Cache-Control"] == "no-store" and url.startswith("http://testserver/s/")
    assert client.get("/shares/").context["new_link"] is None  # shown once
    return url.removeprefix("http://testserver/s/").rstrip("/")


def test_share_open_anonymously_and_the_page_is_noindex(logged_in, conversation) -> None:
    token = create(logged_in, conversation)
    page = Client().get(f"/s/{token}/")
    assert page.status_code == 200
    assert page["X-Robots-Tag"].startswith("noindex") and page["Referrer-Policy"] == "same-origin"
    html = page.content.decode()
    assert '<meta name="robots" content="noindex">' in html
    assert "Where to go?" in html and "**Lisbon**" in html  # markdown is rendered by share.js, sanitised
    assert "js/share.js" in html and "<script>" not in html


def test_model_text_is_escaped_on_the_page(logged_in, conversation) -> None:
    conversation.messages.filter(content="Porto").update(
        content="<script>alert(1)</script><img src=x onerror=alert(2)>"
    )
    token = create(logged_in, conversation)
    html = Client().get(f"/s/{token}/").content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unknown_revoked_and_taken_down_look_alike(logged_in, alice, conversation) -> None:
    revoked, downed = create(logged_in, conversation), create(logged_in, conversation)
    for link in ShareLink.objects.order_by("pk")[:1]:
        assert logged_in.post(f"/shares/{link.pk}/revoke/").status_code == 302
    moderator = client_of(person("mo", is_staff=True))
    down_id = ShareLink.objects.order_by("pk")[1].pk
    assert moderator.post(f"/moderation/shares/{down_id}/take-down/").status_code == 302
    pages = [Client().get(f"/s/{token}/") for token in [revoked, downed, "no-such-token", "x" * 300]]
    assert {page.status_code for page in pages} == {404}
    assert len({page.content for page in pages}) == 1 and all(p["X-Robots-Tag"] for p in pages)
    assert AuditLogEntry.objects.get().action == "take_down_share_link"
    listing = logged_in.get("/shares/").content.decode()
    assert "Revoked" in listing and "Taken down by a moderator" in listing


def test_signed_in_only_sends_the_anonymous_to_log_in(logged_in, conversation) -> None:
    token = create(logged_in, conversation, "signed_in")
    anonymous = Client().get(f"/s/{token}/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/?next=/s/")
    assert client_of(person("bob")).get(f"/s/{token}/").status_code == 200
    assert Client().post(f"/s/{token}/continue/").status_code == 302  # log in first
    assert Conversation.objects.count() == 1


def test_continue_as_a_copy(logged_in, conversation) -> None:
    token = create(logged_in, conversation)
    bob = person("bob")
    response = client_of(bob).post(f"/s/{token}/continue/")
    copy = Conversation.objects.get(owner=bob)
    assert response.status_code == 302 and response["Location"] == f"/c/{copy.id}/"
    assert copy.messages.count() == 4
    assert client_of(bob).post("/s/no-such-token/continue/").status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ("temporary", 400, "A temporary chat can&#x27;t be shared."),
        ("audience", 400, "Choose who may open the link"),
        ("limit", 429, "share links an hour"),
    ],
)
def test_refusals_are_clear_and_change_nothing(
    logged_in, conversation, settings, change, status, text
) -> None:
    settings.SHARE_LINKS_PER_HOUR = 0 if change != "limit" else 1
    if change == "limit":
        create(logged_in, conversation)
    if change == "temporary":
        Conversation.objects.filter(pk=conversation.pk).update(expires_at=conversation.created_at)
    before = ShareLink.objects.count()
    response = logged_in.post(
        f"/c/{conversation.id}/share/", {"audience": "anyone" if change == "audience" else "public"}
    )
    assert response.status_code == status and text in response.content.decode()
    assert ShareLink.objects.count() == before


def test_another_person_s_conversation_and_links_are_not_found(logged_in, conversation) -> None:
    create(logged_in, conversation)
    link = ShareLink.objects.get()
    mallory = client_of(person("mallory"))
    assert mallory.post(f"/c/{conversation.id}/share/", {"audience": "public"}).status_code == 404
    assert mallory.post(f"/shares/{link.pk}/revoke/").status_code == 404
    link.refresh_from_db()
    assert link.is_live and ShareLink.objects.count() == 1
    assert "Travel plans" not in mallory.get("/shares/").content.decode()


def test_staff_see_every_live_link(logged_in, conversation) -> None:
    create(logged_in, conversation)
    moderator = client_of(person("mo", is_staff=True))
    page = moderator.get("/moderation/shares/")
    assert page.status_code == 200 and "Travel plans" in page.content.decode()
    assert client_of(person("bob")).get("/moderation/shares/").status_code == 403


def test_the_chat_page_offers_share_except_on_a_temporary_chat(logged_in, conversation) -> None:
    assert 'id="share-menu"' in logged_in.get(f"/c/{conversation.id}/").content.decode()
    Conversation.objects.filter(pk=conversation.pk).update(expires_at=conversation.created_at)
    assert 'id="share-menu"' not in logged_in.get(f"/c/{conversation.id}/").content.decode()
