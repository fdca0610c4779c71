"""`selectors.send_state`, the send path's one prepared query, against the ORM reads it replaced.

The ORM functions still define each rule (`active_sanction`, `live_reply`,
`limits_for_id`, `tree.leaf_id`, `tree.message_position`); `send_state` must
say what they say in every situation. Then the refusals of `services.reply_send`
that now read it, and, on PostgreSQL, the row locks under two racing sends.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from tests.webapp.chat.test_consumers import enqueued
from webapp.accounts.access import LIMIT_FIELDS, active_limits_for_id, limits_for_id
from webapp.accounts.models import GroupLimits
from webapp.chat import branches, live, quotas, services, tree
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import SendState, live_reply, send_state
from webapp.chat.services import ChatInputError
from webapp.moderation.models import HiddenReply, Sanction
from webapp.moderation.selectors import active_sanction

__all__ = ["enqueued"]  # the fixture, imported for these tests


@pytest.fixture(autouse=True)
def _no_rate_limit(settings) -> None:
    """User ids repeat between tests (rolled back) while Redis keeps their rate slots: off unless a test sets it."""
    settings.RATE_LIMIT_MESSAGES_PER_MINUTE = 0


def make_person(name: str = "person", **fields: Any):
    """A person with no usable password: hashing one costs a third of a second, and nobody logs in here."""
    return get_user_model().objects.create_user(
        username=f"{name}-{uuid.uuid4().hex[:8]}", password=None, **fields
    )


def add(
    conversation: Conversation, parent: Message | uuid.UUID | None, role: str, status: str = "complete"
) -> Message:
    """A message under `parent` (None: a root), as the services add one; the conversation's leaf is not moved."""
    message = Message(
        conversation=conversation,
        parent_id=parent.id if isinstance(parent, Message) else parent,
        role=role,
        status=status,
        content=f"{role} {status}",
    )
    message.explicit_parent = True
    message.save(force_insert=True)
    return message


def finish(reply: Message) -> None:
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content="done")


def sanction(person, kind: str, *, moderator, now: dt.datetime) -> Sanction:
    """One of SANCTIONS for `person`."""
    fields: dict[str, Any] = {
        "ban": {"kind": "ban"},
        "suspension in force": {"kind": "suspend", "until": now + dt.timedelta(hours=1)},
        "suspension expired": {"kind": "suspend", "until": now - dt.timedelta(minutes=1)},
        "revoked ban": {"kind": "ban", "revoked_at": now - dt.timedelta(minutes=1)},
        "revoked suspension": {
            "kind": "suspend",
            "until": now + dt.timedelta(hours=1),
            "revoked_at": now - dt.timedelta(minutes=1),
        },
        "warning": {"kind": "warn"},
    }[kind]
    return Sanction.objects.create(user=person, created_by=moderator, **fields)


# --- agreement with the ORM's definitions ---------------------------------------------------

SANCTIONS = [
    "ban",
    "suspension in force",
    "suspension expired",
    "revoked ban",
    "revoked suspension",
    "warning",
]
STATUSES = ["queued", "streaming", "complete", "failed", "stopped"]
# The conversation the send is in:
SHAPES = [
    "empty",
    "path",  # q1 a1 q2 a2, its leaf remembered
    "path, no leaf remembered",  # rows written without the tree: the newest by time is the leaf
    "hidden leaf",  # the remembered leaf is a reply a moderator hid
    "leaf's reply hidden",  # the leaf is a question whose only reply is hidden
    "leaf with children",  # a branch switched back: the leaf a1 has q2 under it
    "leaf with a sibling",  # a2 was regenerated (a2b) and the path switched back to a2
]

limit_values = st.fixed_dictionaries(
    {
        "messages_per_minute": st.sampled_from([None, 0, 5, 40]),
        "tokens_per_day": st.sampled_from([None, 0, 1_000, 900_000]),
        "max_tokens": st.sampled_from([None, 1, 700, 100_000]),
        "api_allowed": st.sampled_from([None, True, False]),
        "exports_allowed": st.sampled_from([None, True, False]),
    }
)


@dataclass
class Situation:
    shape: str = "path"
    own_status: str = "complete"  # of the last reply in this conversation
    times: tuple[int, ...] = (0, 1, 2, 3)  # the order of q1 a1 q2 a2 in time ("no leaf remembered")
    groups: list[dict[str, Any] | None] = field(default_factory=list)  # None: a group without limits
    sanctions: list[str] = field(default_factory=list)
    mine_elsewhere: list[str] = field(
        default_factory=list
    )  # the status of a reply in each other conversation
    others: list[str] = field(default_factory=list)  # the same, in other people's conversations
    active: bool = True
    max_live: int = 2


situations = st.builds(
    Situation,
    shape=st.sampled_from(SHAPES),
    own_status=st.sampled_from(STATUSES),
    times=st.permutations([0, 1, 2, 3]).map(tuple),
    groups=st.lists(st.none() | limit_values, max_size=3),
    sanctions=st.lists(st.sampled_from(SANCTIONS), max_size=3),
    mine_elsewhere=st.lists(st.sampled_from(STATUSES), max_size=3),
    others=st.lists(st.sampled_from(STATUSES), max_size=3),
    active=st.booleans(),
    max_live=st.sampled_from([0, 2]),
)


def build(situation: Situation) -> Conversation:
    """The rows of a situation; another person is always there: banned, busy, in a generous group of their own."""
    now = timezone.now()
    moderator = make_person("moderator", is_staff=True)
    person = make_person("sender", is_active=situation.active)
    stranger = make_person("stranger")
    Sanction.objects.create(user=stranger, created_by=moderator, kind="ban")
    theirs = Group.objects.create(name=f"theirs-{uuid.uuid4().hex[:8]}")
    GroupLimits.objects.create(
        group=theirs,
        messages_per_minute=0,
        tokens_per_day=0,
        max_tokens=3333,
        api_allowed=True,
        exports_allowed=True,
    )
    stranger.groups.add(theirs)
    for values in situation.groups:
        group = Group.objects.create(name=f"group-{uuid.uuid4().hex[:8]}")
        if values is not None:
            GroupLimits.objects.create(group=group, **values)
        person.groups.add(group)
    for kind in situation.sanctions:
        sanction(person, kind, moderator=moderator, now=now)
    for owner, statuses in ((person, situation.mine_elsewhere), (stranger, situation.others)):
        for status in statuses:
            elsewhere = Conversation.objects.create(owner=owner)
            add(elsewhere, add(elsewhere, None, "user"), "assistant", status)
    conversation = Conversation.objects.create(owner=person)
    if situation.shape != "empty":
        q1 = add(conversation, None, "user")
        a1 = add(conversation, q1, "assistant")
        q2 = add(conversation, a1, "user")
        a2 = add(conversation, q2, "assistant", situation.own_status)
        leaf: Message | None = a2
        if situation.shape == "path, no leaf remembered":
            leaf = None
            for message, order in zip((q1, a1, q2, a2), situation.times, strict=True):
                Message.objects.filter(pk=message.pk).update(created_at=now + dt.timedelta(seconds=order))
        elif situation.shape == "hidden leaf":
            HiddenReply.objects.create(message=a2, hidden_by=moderator)
        elif situation.shape == "leaf's reply hidden":
            HiddenReply.objects.create(message=a2, hidden_by=moderator)
            leaf = q2
        elif situation.shape == "leaf with children":
            leaf = a1
        elif situation.shape == "leaf with a sibling":
            add(conversation, q2, "assistant")
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf=leaf)
    return Conversation.objects.get(pk=conversation.pk)


def assert_agrees(conversation: Conversation, shape: str) -> SendState:
    """Every field of `send_state` is what the ORM's definitions say."""
    owner = get_user_model().objects.get(pk=conversation.owner_id)
    state = send_state(
        conversation_id=conversation.id, owner_id=conversation.owner_id, leaf_id=conversation.current_leaf_id
    )
    assert state.active is owner.is_active
    assert (active_limits_for_id(owner.pk) is not None) is owner.is_active
    limits = limits_for_id(owner.pk)
    assert state.limits == limits
    for name in LIMIT_FIELDS:  # 1 == True: the types too, so SQLite's raw 0/1 would show
        assert type(getattr(state.limits, name)) is type(getattr(limits, name)), name
    if owner.is_active:
        assert active_limits_for_id(owner.pk) == state.limits
    assert state.sanctioned is (active_sanction(owner) is not None)
    assert state.reply_in_progress is (live_reply(conversation) is not None)
    live_count = Message.objects.filter(
        conversation__owner_id=owner.pk, role=Message.Role.ASSISTANT, status__in=Message.LIVE_STATUSES
    ).count()
    assert state.live_replies == (live_count if django_settings.MAX_LIVE_REPLIES_PER_USER else 0)
    assert state.queued == Message.objects.filter(status=Message.Status.QUEUED).count()
    assert state.parent_id == tree.leaf_id(conversation)
    if shape in ("empty", "path"):
        assert state.only_child  # the fast path: no tree read for a plain send
    # Last, as it adds a row: where only_child says so, a message under parent_id sits
    # where reply_send then says it does, without reading the tree: alone, under parent_id.
    new = add(conversation, state.parent_id, "user")
    if state.only_child:
        assert tree.message_position(new) == tree.Position(state.parent_id, (new.id,), 0)
    return state


@given(situation=situations)
@example(situation=Situation(shape="empty"))
@example(situation=Situation(sanctions=["ban"]))
@example(situation=Situation(sanctions=["suspension in force", "warning"]))
@example(
    situation=Situation(sanctions=["suspension expired", "revoked ban", "revoked suspension", "warning"])
)
@example(
    situation=Situation(own_status="streaming", mine_elsewhere=["queued", "complete"], others=["queued"])
)
@example(situation=Situation(own_status="queued", mine_elsewhere=["streaming"], max_live=0))
@example(situation=Situation(shape="hidden leaf"))
@example(situation=Situation(shape="leaf's reply hidden"))
@example(situation=Situation(shape="leaf with children"))
@example(situation=Situation(shape="leaf with a sibling"))
@example(situation=Situation(shape="path, no leaf remembered", times=(3, 0, 2, 1)))
@example(situation=Situation(active=False, groups=[{"max_tokens": 700}]))
@example(
    situation=Situation(
        groups=[
            None,
            {"messages_per_minute": 5, "tokens_per_day": 0, "max_tokens": None, "api_allowed": False},
            {"messages_per_minute": 40, "tokens_per_day": 1_000, "max_tokens": 700, "exports_allowed": False},
        ]
    )
)
@hypothesis.settings(
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.django_db
def test_send_state_says_what_the_orm_says(settings, situation: Situation) -> None:
    """Groups and limits, sanctions, live replies here and elsewhere, the tree's shapes, a deactivation."""
    settings.MAX_LIVE_REPLIES_PER_USER = situation.max_live
    with transaction.atomic():  # each example's rows go again
        assert_agrees(build(situation), situation.shape)
        transaction.set_rollback(True)


# --- the send path's refusals, through services.reply_send ----------------------------------


@pytest.fixture
def person(db):
    return make_person("sender")


@pytest.fixture
def chat(person, enqueued) -> Conversation:
    return Conversation.objects.create(owner=person)


def send(conversation: Conversation, raw_params: object = None) -> Message:
    return services.reply_send(
        conversation=Conversation.objects.get(pk=conversation.pk), content="hello", raw_params=raw_params
    )


def stored() -> tuple[object, ...]:
    """Everything a send writes: messages anywhere, and each conversation's title, leaf and time."""
    return (
        Message.objects.count(),
        sorted(Conversation.objects.values_list("id", "title", "current_leaf_id", "updated_at")),
    )


def refused(
    conversation: Conversation, raw_params: object = None, *, call: Callable[[], object] | None = None
) -> str:
    """The code a send (or `call`) is refused with; nothing stored."""
    before = stored()
    with pytest.raises(ChatInputError) as refusal:
        (call or (lambda: send(conversation, raw_params)))()
    assert stored() == before
    return refusal.value.code


def test_a_ban_refuses_a_send_until_revoked(chat: Conversation, person) -> None:
    ban = Sanction.objects.create(user=person, created_by=make_person("mod", is_staff=True), kind="ban")
    assert refused(chat) == "banned"
    Sanction.objects.filter(pk=ban.pk).update(revoked_at=timezone.now())
    assert send(chat).status == Message.Status.QUEUED


def test_a_suspension_in_force_refuses_and_an_ended_one_or_a_warning_does_not(
    chat: Conversation, person
) -> None:
    moderator, now = make_person("mod", is_staff=True), timezone.now()
    suspension = sanction(person, "suspension in force", moderator=moderator, now=now)
    assert refused(chat) == "suspended"
    Sanction.objects.filter(pk=suspension.pk).update(until=now - dt.timedelta(seconds=1))
    sanction(person, "warning", moderator=moderator, now=now)
    assert send(chat).status == Message.Status.QUEUED


def test_a_reply_in_progress_refuses_the_next_send_until_it_ends(settings, chat: Conversation) -> None:
    settings.MAX_LIVE_REPLIES_PER_USER = 0  # only the conversation's own check can refuse
    reply = send(chat)
    assert refused(chat) == "reply_in_progress"
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.STREAMING)
    assert refused(chat) == "reply_in_progress"
    finish(reply)
    assert send(chat).parent.parent_id == reply.id


def test_a_deactivated_account_is_refused(chat: Conversation, person) -> None:
    person.is_active = False
    person.save(update_fields=["is_active"])
    assert refused(chat) == "deactivated"


def test_busy_while_a_reply_of_theirs_is_live_in_another_conversation(
    settings, chat: Conversation, person
) -> None:
    settings.MAX_LIVE_REPLIES_PER_USER = 1
    elsewhere = Conversation.objects.create(owner=person)
    reply = send(elsewhere)
    assert refused(chat) == "busy"
    # Somebody else's live reply does not count; their own finished one neither.
    stranger_chat = Conversation.objects.create(owner=make_person("stranger"))
    send(stranger_chat)
    finish(reply)
    assert send(chat).status == Message.Status.QUEUED
    settings.MAX_LIVE_REPLIES_PER_USER = 2
    assert send(elsewhere).status == Message.Status.QUEUED


@pytest.mark.parametrize("how", ["regenerate", "edit"])
def test_regenerate_and_edit_are_refused_the_same_way(settings, chat: Conversation, person, how: str) -> None:
    settings.MAX_LIVE_REPLIES_PER_USER = 1
    reply = send(chat)
    finish(reply)
    question_id = str(reply.parent_id)
    again: Callable[[], object] = {
        "regenerate": lambda: branches.reply_regenerate(conversation=Conversation.objects.get(pk=chat.pk)),
        "edit": lambda: branches.reply_edit(
            conversation=Conversation.objects.get(pk=chat.pk), message_id=question_id, content="again"
        ),
    }[how]
    other = send(Conversation.objects.create(owner=person))
    assert refused(chat, call=again) == "busy"
    finish(other)
    ban = Sanction.objects.create(user=person, created_by=make_person("mod", is_staff=True), kind="ban")
    assert refused(chat, call=again) == "banned"
    ban.delete()
    assert again().status == Message.Status.QUEUED


def test_invalid_params_are_refused_before_a_rate_slot_is_taken(settings, chat: Conversation, person) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_MINUTE = 2
    settings.MAX_LIVE_REPLIES_PER_USER = 0
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    key = quotas._key("rate", person.pk)
    client.delete(key)
    try:
        for bad in ({"temperature": "hot"}, {"max_tokens": True}, "hot"):
            assert refused(chat, bad) == "invalid_params"
        assert client.zcard(key) == 0
        for _ in range(2):
            finish(send(chat, {"temperature": 0.5}))
        assert client.zcard(key) == 2
        assert refused(chat) == "rate_limited"  # the limit is on: the invalid sends really took nothing
    finally:
        client.delete(key)
        client.close()


def test_params_are_held_to_the_persons_own_max_tokens(settings, chat: Conversation, person) -> None:
    """`state.limits` is the sender's: their group's larger max_tokens, nobody else's."""
    settings.MAX_TOKENS_LIMIT = 100
    settings.MAX_LIVE_REPLIES_PER_USER = 0
    group = Group.objects.create(name="long replies")
    GroupLimits.objects.create(group=group, max_tokens=300)
    stranger_chat = Conversation.objects.create(owner=make_person("stranger"))
    assert refused(chat, {"max_tokens": 300}) == "invalid_params"
    person.groups.add(group)
    reply = send(chat, {"max_tokens": 300})
    assert reply.params["max_tokens"] == 300
    finish(reply)
    assert refused(chat, {"max_tokens": 301}) == "invalid_params"
    assert refused(stranger_chat, {"max_tokens": 300}) == "invalid_params"


@pytest.mark.django_db
def test_the_start_event_says_the_place_in_the_queue(
    monkeypatch: pytest.MonkeyPatch, enqueued: list[str], django_capture_on_commit_callbacks
) -> None:
    """Three people send one after another: their replies are 0th, 1st and 2nd in the queue."""
    published: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(
        live, "publish", lambda conversation_id, event: published.append((conversation_id, event))
    )
    replies = []
    for name in ("first", "second", "third"):
        conversation = Conversation.objects.create(owner=make_person(name))
        with django_capture_on_commit_callbacks(execute=True):
            replies.append(send(conversation))
    starts = [event for _, event in published if event["type"] == "start"]
    assert [(event["message_id"], event["queue_position"]) for event in starts] == [
        (str(reply.id), place) for place, reply in enumerate(replies)
    ]
    assert enqueued == [str(reply.id) for reply in replies]


# --- races: PostgreSQL's row locks --------------------------------------------------------

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks (SELECT ... FOR UPDATE OF) are PostgreSQL's"
)


def race(*conversations: Conversation) -> list[str]:
    """One send per conversation, each in its own thread, all let go at once: "sent" or the refusal's code."""
    barrier = threading.Barrier(len(conversations))
    outcomes: list[str] = [""] * len(conversations)

    def sender(slot: int, conversation: Conversation) -> None:
        try:
            barrier.wait(timeout=30)
            services.reply_send(conversation=conversation, content="at once")
            outcomes[slot] = "sent"
        except ChatInputError as refusal:
            outcomes[slot] = refusal.code
        except BaseException as error:  # shown in the assertion
            outcomes[slot] = repr(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=sender, args=(slot, Conversation.objects.get(pk=conversation.pk)))
        for slot, conversation in enumerate(conversations)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return sorted(outcomes)


def replies_in(*conversations: Conversation) -> int:
    return Message.objects.filter(conversation__in=conversations, role=Message.Role.ASSISTANT).count()


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_sends_at_once_in_one_conversation_store_one_reply(settings, enqueued: list[str]) -> None:
    settings.MAX_LIVE_REPLIES_PER_USER = 0  # only the conversation's lock stands between them
    for _ in range(5):
        conversation = Conversation.objects.create(owner=make_person("racer"))
        assert race(conversation, conversation) == ["reply_in_progress", "sent"]
        assert replies_in(conversation) == 1
        assert Message.objects.filter(conversation=conversation).count() == 2
    assert len(enqueued) == 5


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_sends_at_once_in_two_conversations_of_one_person_store_one_reply(
    settings, enqueued: list[str]
) -> None:
    settings.MAX_LIVE_REPLIES_PER_USER = 1  # the owner's row lock makes the second send see the first reply
    for _ in range(5):
        person = make_person("racer")
        first, second = (Conversation.objects.create(owner=person) for _ in range(2))
        assert race(first, second) == ["busy", "sent"]
        assert replies_in(first, second) == 1
    assert len(enqueued) == 5
