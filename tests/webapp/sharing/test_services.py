"""Share link writes and reads: the snapshot, hidden and blocked replies, revoke, take-down, copies, limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.webapp.sharing.conftest import person
from webapp.chat.models import Conversation, Message
from webapp.chat.retention import retention_apply
from webapp.chat.selectors import messages_of
from webapp.chat.services import add_message
from webapp.moderation.models import AuditLogEntry, HiddenReply, Sanction
from webapp.sharing import services
from webapp.sharing.models import SharedMessage, ShareLink
from webapp.sharing.selectors import (
    ShareLinkNeedsSignIn,
    ShareLinkNotFound,
    access_share_link,
    links_for_staff,
    shared_messages,
    token_hash,
)

pytestmark = pytest.mark.django_db


def share(conversation: Conversation, audience: str = "public") -> tuple[ShareLink, str]:
    return services.share_link_create(owner=conversation.owner, conversation=conversation, audience=audience)


def contents(link: ShareLink) -> list[str]:
    return [shared.content for shared in shared_messages(link)]


def test_the_snapshot_is_the_path_shown_and_later_changes_leave_it(conversation) -> None:
    link, token = share(conversation)
    assert contents(link) == ["Where to go?", "**Lisbon**", "And then?", "Porto"]
    # Only a hash of a long random token is stored.
    assert len(token) >= 32 and link.token_hash == token_hash(token) and token not in link.token_hash
    # An edit makes a sibling branch and the page shows it; the snapshot does not move.
    first = conversation.messages.get(content="Where to go?")
    edit = add_message(conversation=conversation, parent_id=None, role="user", content="Where else?")
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=edit)
    Message.objects.filter(pk=first.pk).update(content="changed")
    conversation.refresh_from_db()
    assert [m.content for m in messages_of(conversation)] == ["Where else?"]
    assert contents(link) == ["Where to go?", "**Lisbon**", "And then?", "Porto"]


def test_replies_hidden_or_blocked_after_sharing_are_never_shown(conversation, alice) -> None:
    link, _ = share(conversation)
    moderator = person("mo", is_staff=True)
    HiddenReply.objects.create(message=conversation.messages.get(content="**Lisbon**"), hidden_by=moderator)
    conversation.messages.filter(content="Porto").update(status=Message.Status.BLOCKED)
    assert contents(link) == ["Where to go?", "And then?"]
    copy = services.share_link_continue(link=link, user=person("bob"))
    assert [m.content for m in messages_of(copy)] == ["Where to go?", "And then?"]


def test_live_and_blocked_replies_are_left_out_at_share_time(conversation) -> None:
    conversation.messages.filter(content="Porto").update(status=Message.Status.STREAMING)
    conversation.messages.filter(content="**Lisbon**").update(status=Message.Status.BLOCKED)
    link, _ = share(conversation)
    assert list(link.snapshot.values_list("content", flat=True)) == ["Where to go?", "And then?"]


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("temporary", "temporary_chat"),
        ("empty", "nothing_to_share"),
        ("audience", "invalid_audience"),
    ],
)
def test_refused_shares_change_nothing(conversation, setup: str, code: str) -> None:
    audience = "everyone" if setup == "audience" else "public"
    if setup == "temporary":
        conversation.expires_at = conversation.created_at
        conversation.save()
    if setup == "empty":
        conversation = Conversation.objects.create(owner=conversation.owner)
    with pytest.raises(services.ShareInputError) as refused:
        share(conversation, audience)
    assert refused.value.code == code and refused.value.status == 400
    assert not ShareLink.objects.exists() and not SharedMessage.objects.exists()


def test_a_suspended_person_shares_nothing(conversation) -> None:
    moderator = person("mo", is_staff=True)
    Sanction.objects.create(
        user=conversation.owner,
        kind="suspend",
        until=timezone.now() + timedelta(hours=1),
        created_by=moderator,
    )
    with pytest.raises(services.ShareInputError) as refused:
        share(conversation)
    assert (refused.value.code, refused.value.status) == ("suspended", 403)
    assert "nothing was shared" in refused.value.message and not ShareLink.objects.exists()


def test_the_rate_limit_counts_links_made_in_the_hour(conversation, settings) -> None:
    settings.SHARE_LINKS_PER_HOUR = 2
    first, _ = share(conversation)
    services.share_link_revoke(link=first)  # revoked links still count
    share(conversation)
    with pytest.raises(services.ShareInputError) as refused:
        share(conversation)
    assert refused.value.status == 429 and "2 share links an hour" in refused.value.message
    assert ShareLink.objects.count() == 2
    ShareLink.objects.update(created_at=first.created_at.replace(year=2000))
    share(conversation)  # the hour has passed


def test_access_by_token(conversation) -> None:
    public, public_token = share(conversation)
    members, members_token = share(conversation, "signed_in")
    anonymous = type("Anonymous", (), {"is_authenticated": False})()
    assert access_share_link(anonymous, public_token) == public
    with pytest.raises(ShareLinkNeedsSignIn):
        access_share_link(anonymous, members_token)
    assert access_share_link(conversation.owner, members_token) == members
    for token in ["", "x" * 500, public_token[:-1], "\udcff"]:
        with pytest.raises(ShareLinkNotFound):
            access_share_link(conversation.owner, token)


def test_revoke_take_down_and_deletion_end_a_link(conversation, alice) -> None:
    revoked, revoked_token = share(conversation)
    downed, downed_token = share(conversation)
    services.share_link_revoke(link=revoked)
    moderator = person("mo", is_staff=True)
    services.share_link_take_down(moderator=moderator, link=downed)
    services.share_link_take_down(moderator=moderator, link=downed)  # twice: logged once
    for token in [revoked_token, downed_token]:
        with pytest.raises(ShareLinkNotFound):
            access_share_link(alice, token)
    entry = AuditLogEntry.objects.get()
    assert (entry.moderator, entry.action, entry.target_type, entry.target_id) == (
        moderator,
        "take_down_share_link",
        "share_link",
        str(downed.pk),
    )
    live, _ = share(conversation)
    assert list(links_for_staff()) == [live]
    conversation.delete()  # the snapshot goes with the chat
    assert not ShareLink.objects.exists() and not SharedMessage.objects.exists()


def test_retention_deleting_the_conversation_ends_its_links(conversation, settings) -> None:
    settings.RETENTION_DAYS = 30
    _, token = share(conversation)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=31))
    assert retention_apply().conversations == 1
    assert not ShareLink.objects.exists() and not SharedMessage.objects.exists()
    with pytest.raises(ShareLinkNotFound):
        access_share_link(conversation.owner, token)


def test_continue_as_a_copy_makes_one_path_of_the_reader(conversation) -> None:
    link, _ = share(conversation)
    bob = person("bob")
    copy = services.share_link_continue(link=link, user=bob)
    assert copy.owner == bob and copy.title == "Copy of Travel plans" and not copy.is_temporary
    path = messages_of(copy)
    assert [(m.role, m.content) for m in path] == [
        ("user", "Where to go?"),
        ("assistant", "**Lisbon**"),
        ("user", "And then?"),
        ("assistant", "Porto"),
    ]
    assert all(m.position.count == 1 for m in path) and copy.messages.count() == 4
    assert conversation.messages.count() == 4  # the original is untouched
