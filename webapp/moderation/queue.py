"""Reads of the moderators' queue: flagged, redacted, blocked and reported items, newest first.

Two tables feed one list, so a page is the newest `size` items of both,
paged by keyset: a cursor names the last item shown as (created_at, kind,
id) and the next page is what sorts below it. Each page costs the same few
queries however deep it is and however many rows there are: one per table
(each walking its own `(status, -created_at, -id)` index) and a handful for
the path around every item (one per generation walked, one for the replies
below, one for the versions).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from inference.moderation.base import Action
from webapp.api.models import ApiKey
from webapp.chat.models import Message
from webapp.chat.tree import Position
from webapp.moderation.models import ModerationEvent, Report, ReviewStatus

KINDS = ("event", "report")
# Messages shown around each item: this many before it and after it.
CONTEXT_BEFORE, CONTEXT_AFTER = 2, 1


class CursorError(ValueError):
    """A page link that this module did not write."""


@dataclass(frozen=True, order=True)
class Cursor:
    """The position of an item in the queue's order (newest first)."""

    created_at: datetime
    kind: str
    id: int

    def encode(self) -> str:
        # Integers only: nothing in it needs escaping in a URL.
        micros = round((self.created_at - EPOCH) / timedelta(microseconds=1))
        return f"{micros}.{self.kind[0]}.{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        parts = text.split(".")
        kinds = {kind[0]: kind for kind in KINDS}
        if len(parts) != 3 or parts[1] not in kinds or not all(p.isdigit() for p in (parts[0], parts[2])):
            raise CursorError(text)
        micros, item_id = int(parts[0]), int(parts[2])
        if micros > MAX_MICROS or item_id > 2**63 - 1:
            raise CursorError(text)
        return cls(EPOCH + timedelta(microseconds=micros), kinds[parts[1]], item_id)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MICROS = round((datetime(9999, 1, 1, tzinfo=UTC) - EPOCH) / timedelta(microseconds=1))


@dataclass(frozen=True)
class QueueFilters:
    """What the moderator narrowed the queue to; empty values mean any."""

    status: str = ReviewStatus.OPEN.value  # "" for any
    kind: str = ""
    category: str = ""
    hook: str = ""
    stage: str = ""
    action: str = ""
    user: AbstractBaseUser | None = None
    since: date | None = None
    until: date | None = None  # inclusive

    @property
    def events_only(self) -> bool:
        """Filters that only events have: a report never matches them."""
        return bool(self.category or self.hook or self.stage or self.action)


# Joined into the queue's one query: which API key, if any, made the item's conversation.
API_KEY_PATH = "message__conversation__api_link__api_key"


@dataclass
class QueueItem:
    """One row of the queue: a moderation event or a report, with the conversation around it."""

    kind: str
    record: ModerationEvent | Report
    context: list[Message] = field(default_factory=list)
    # The message the item is about: the reply, or for an input event the user's message before it.
    flagged: Message | None = None

    @property
    def key(self) -> str:
        """How forms name the item: "event:12", "report:3"."""
        return f"{self.kind}:{self.record.pk}"

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.record.created_at, self.kind, self.record.pk)

    @property
    def message(self) -> Message | None:
        """None once the conversation was deleted (by its owner, or by retention): see `original`."""
        return self.record.message

    @property
    def user(self) -> AbstractBaseUser:
        """Whose conversation it is: the person a sanction would apply to."""
        if self.message is not None:
            return self.message.conversation.owner
        # What the record kept: the event's user is the owner, and people report only their own chats.
        return self.record.user if self.kind == "event" else self.record.reporter

    @property
    def api_key(self) -> ApiKey | None:
        """The API key whose request made the conversation; None for the chat page's own."""
        if self.message is None:
            return None
        # A missing reverse one-to-one raises a DoesNotExist that is also an AttributeError.
        link = getattr(self.message.conversation, "api_link", None)
        return link.api_key if link is not None else None

    @property
    def original(self) -> str:
        """The text the hook saw, unredacted, when it differs from what is stored (staff only).

        With the conversation deleted, the excerpt is all that is left of it.
        """
        if self.message is None:
            return self.record.excerpt
        shown = (self.flagged or self.message).content
        if self.kind == "event" and self.record.excerpt and self.record.excerpt != shown:
            return self.record.excerpt
        return ""


@dataclass
class QueuePage:
    items: list[QueueItem]
    next_cursor: Cursor | None


def events_for_queue(filters: QueueFilters) -> QuerySet[ModerationEvent]:
    # "Not allow" rather than "one of three": an IN list leads SQLite to the (action, created_at)
    # index and a sort of every matching row; this way the newest-first index is walked.
    # `user`: whose it was, once the conversation is deleted (QueueItem.user).
    events = ModerationEvent.objects.exclude(action=Action.ALLOW.value).select_related(
        "user", "message__conversation__owner", "message__moderation_hidden", API_KEY_PATH
    )
    if filters.status:
        events = events.filter(status=filters.status)
    # The first category has its own indexed column (what the hook found first).
    for name in ("category", "hook", "stage", "action"):
        if getattr(filters, name):
            events = events.filter(**{name: getattr(filters, name)})
    if filters.user is not None:
        events = events.filter(user=filters.user)
    return _in_dates(events, filters)


def reports_for_queue(filters: QueueFilters) -> QuerySet[Report]:
    reports = Report.objects.select_related(
        "reporter", "message__conversation__owner", "message__moderation_hidden", API_KEY_PATH
    )
    if filters.status:
        reports = reports.filter(status=filters.status)
    if filters.user is not None:
        reports = reports.filter(
            Q(message__conversation__owner=filters.user) | Q(message__isnull=True, reporter=filters.user)
        )
    return _in_dates(reports, filters)


def _in_dates(items: QuerySet, filters: QueueFilters) -> QuerySet:
    if filters.since:
        items = items.filter(created_at__gte=datetime.combine(filters.since, time.min, tzinfo=UTC))
    if filters.until:
        items = items.filter(
            created_at__lt=datetime.combine(filters.until + timedelta(days=1), time.min, tzinfo=UTC)
        )
    return items


def _older_than(items: QuerySet, kind: str, cursor: Cursor | None) -> QuerySet:
    """The rows of one kind that sort after `cursor` in (created_at, kind, id) descending."""
    if cursor is None:
        return items
    if kind < cursor.kind:
        return items.filter(created_at__lte=cursor.created_at)
    if kind > cursor.kind:
        return items.filter(created_at__lt=cursor.created_at)
    # A range on created_at, which an index seeks to, minus the ties already shown: written
    # as "older, or as old with a smaller id", SQLite walks down from the newest row instead.
    return items.filter(created_at__lte=cursor.created_at).exclude(
        created_at=cursor.created_at, id__gte=cursor.id
    )


def queue_page(filters: QueueFilters, *, before: Cursor | None = None, size: int = 25) -> QueuePage:
    """The `size` newest items older than `before`, each with its context; three queries."""
    sources: list[tuple[str, QuerySet]] = []
    if filters.kind in ("", "event"):
        sources.append(("event", events_for_queue(filters)))
    if filters.kind in ("", "report") and not filters.events_only:
        sources.append(("report", reports_for_queue(filters)))
    streams = [
        [
            QueueItem(kind, record)
            for record in _older_than(rows, kind, before).order_by("-created_at", "-id")[: size + 1]
        ]
        for kind, rows in sources
    ]
    merged = list(heapq.merge(*streams, key=lambda item: item.cursor, reverse=True))
    items, more = merged[:size], len(merged) > size
    attach_context(items)
    return QueuePage(items, items[-1].cursor if more else None)


def attach_context(items: list[QueueItem]) -> None:
    """Fill each item's `context`: its message's path, CONTEXT_BEFORE messages up and the newest reply below.

    The conversation is a tree (webapp/chat/tree.py): the context is the
    branch the message is on, each message with its `position` among its
    versions (hidden replies included: staff see them). A few queries for
    the whole page, one per generation walked, however long the conversations are.
    """
    items = [item for item in items if item.message is not None]  # a deleted conversation has no context
    targets = {item.message.pk for item in items}
    if not targets:
        return
    found = {m.pk: m for m in _context_rows(pk__in=targets)}
    wanted = {m.parent_id for m in found.values()} - {None} - found.keys()
    for _ in range(CONTEXT_BEFORE):
        ancestors = list(_context_rows(pk__in=wanted)) if wanted else []
        found |= {m.pk: m for m in ancestors}
        wanted = {m.parent_id for m in ancestors} - {None} - found.keys()
    newest_child: dict[object, Message] = {}
    for child in _context_rows(parent_id__in=targets).order_by("created_at", "id"):
        newest_child[child.parent_id] = child
    for item in items:
        target = found[item.message.pk]
        path = [target]
        while len(path) <= CONTEXT_BEFORE and path[0].parent_id in found:
            path.insert(0, found[path[0].parent_id])
        after = newest_child.get(target.pk)
        item.context = path + ([after] if after is not None and CONTEXT_AFTER else [])
        item.flagged = target
        if item.kind == "event" and item.record.stage == "input":
            asked = [m for m in path[:-1] if m.role == Message.Role.USER]
            item.flagged = asked[-1] if asked else item.flagged
    _attach_positions([message for item in items for message in item.context])


def _context_rows(**lookup: object) -> QuerySet[Message]:
    return Message.objects.filter(**lookup).select_related("moderation_hidden")


def _attach_positions(messages: list[Message]) -> None:
    """Each message's place among its versions (its parent's messages, or its conversation's first ones)."""
    parents = {m.parent_id for m in messages} - {None}
    rooted = {m.conversation_id for m in messages if m.parent_id is None}
    siblings: dict[tuple[object, object], list[object]] = {}
    rows = Message.objects.filter(
        Q(parent_id__in=parents) | Q(parent__isnull=True, conversation_id__in=rooted)
    ).order_by("created_at", "id")
    for conversation_id, parent_id, message_id in rows.values_list("conversation_id", "parent_id", "id"):
        key = (conversation_id if parent_id is None else None, parent_id)
        siblings.setdefault(key, []).append(message_id)
    for message in messages:
        key = (message.conversation_id if message.parent_id is None else None, message.parent_id)
        versions = tuple(siblings.get(key, [message.pk]))
        message.position = Position(message.parent_id, versions, versions.index(message.pk))


class UnknownItems(LookupError):
    """Some of the keys name no item; `keys` lists them."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(", ".join(keys))
        self.keys = keys


def items_by_keys(keys: list[str]) -> list[QueueItem]:
    """The queue items named "event:12" / "report:3", in the order given; UnknownItems if any is missing.

    Two queries whatever the number of keys; the rows are locked when called
    inside a transaction that writes them.
    """
    wanted: dict[str, set[int]] = {kind: set() for kind in KINDS}
    bad: list[str] = []
    for key in keys:
        kind, _, number = key.partition(":")
        if kind in wanted and number.isdigit() and int(number) <= 2**63 - 1:
            wanted[kind].add(int(number))
        else:
            bad.append(key)
    found = {
        f"event:{event.pk}": QueueItem("event", event)
        for event in ModerationEvent.objects.filter(pk__in=wanted["event"]).select_related(
            "message__conversation__owner"
        )
    } | {
        f"report:{report.pk}": QueueItem("report", report)
        for report in Report.objects.filter(pk__in=wanted["report"]).select_related(
            "message__conversation__owner"
        )
    }
    bad += [key for key in keys if key not in found and key not in bad]
    if bad:
        raise UnknownItems(bad)
    return [found[key] for key in dict.fromkeys(keys)]
