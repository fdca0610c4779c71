"""Full-text search over one person's conversations: titles and messages, with highlighted snippets.

PostgreSQL's full-text search (stemming, ranking, `ts_headline`) where the
database is PostgreSQL; a portable substring search on SQLite. Snippets come
back as safe HTML: the text is escaped and only the `<mark>` tags are ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import F, QuerySet
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from webapp.chat.models import Conversation, Folder, Message
from webapp.chat.selectors import conversations_for_user, visible
from webapp.chat.tree import MessageTree

MAX_QUERY_CHARS = 200
MAX_RESULTS = 50
SNIPPET_CHARS = 160
# Private-use characters as highlight markers, swapped for <mark> after escaping
# (PostgreSQL text cannot hold NUL). One a user typed can at worst add a <mark>.
_START, _STOP = "\ue000", "\ue001"


@dataclass(frozen=True)
class SearchHit:
    conversation_id: UUID
    title: str
    snippet: SafeString
    message_id: UUID | None  # None when only the title matched
    # False when the message is on a version its conversation does not show now (webapp/chat/tree.py).
    on_path: bool = True


@dataclass(frozen=True)
class SearchFilters:
    """Which conversations a search looks in: by default every one but the archived."""

    folder: Folder | None = None
    pinned_only: bool = False
    # False: not archived (the default), True: archived only, None: both.
    archived: bool | None = False

    def scope(self, user: AbstractBaseUser) -> QuerySet[Conversation]:
        conversations = conversations_for_user(user)
        if self.archived is not None:
            conversations = conversations.filter(archived_at__isnull=not self.archived)
        if self.folder is not None:
            conversations = conversations.filter(folder=self.folder)
        if self.pinned_only:
            conversations = conversations.filter(pinned=True)
        return conversations


def search_conversations(
    user: AbstractBaseUser, query: str, filters: SearchFilters | None = None
) -> list[SearchHit]:
    """The user's conversations matching `query`, best first, one hit per conversation."""
    query = " ".join(query.split())[:MAX_QUERY_CHARS]
    if not query:
        return []
    scope = (filters or SearchFilters()).scope(user)
    if connection.vendor == "postgresql":
        return _mark_other_versions(_search_postgresql(scope, query))
    return _mark_other_versions(_search_portable(scope, query))


def _mark_other_versions(hits: list[SearchHit]) -> list[SearchHit]:
    """Say which hits are on a branch other than the one shown: one query for their conversations' trees."""
    wanted = {hit.conversation_id for hit in hits if hit.message_id is not None}
    if not wanted:
        return hits
    rows: dict[UUID, list[tuple[UUID, UUID | None]]] = {}
    hidden: set[UUID] = set()
    messages = (
        Message.objects.filter(conversation_id__in=wanted)
        .annotate(hidden_id=F("moderation_hidden__id"))
        .order_by("created_at", "id")
        .values_list("conversation_id", "id", "parent_id", "hidden_id")
    )
    for conversation_id, message_id, parent_id, hidden_id in messages:
        rows.setdefault(conversation_id, []).append((message_id, parent_id))
        if hidden_id is not None:
            hidden.add(message_id)
    leaves = dict(Conversation.objects.filter(pk__in=wanted).values_list("pk", "current_leaf_id"))
    shown: set[UUID] = set()
    for conversation_id, tree_rows in rows.items():
        shown.update(MessageTree(tree_rows, hidden).shown_path(leaves.get(conversation_id)))
    return [
        replace(hit, on_path=hit.message_id in shown) if hit.message_id is not None else hit for hit in hits
    ]


def _search_postgresql(scope: QuerySet[Conversation], query: str) -> list[SearchHit]:
    ts_query = SearchQuery(query, search_type="websearch", config="english")
    messages = (
        visible(Message.objects.filter(conversation__in=scope))
        .annotate(document=SearchVector("content", config="english"))
        .filter(document=ts_query)  # @@, the real match test: ts_rank is never quite zero
        .annotate(rank=SearchRank(F("document"), ts_query))
        .annotate(
            headline=SearchHeadline(
                "content",
                ts_query,
                config="english",
                start_sel=_START,
                stop_sel=_STOP,
                max_words=30,
                min_words=12,
            )
        )
        .order_by("-rank", "-created_at")
        .values("id", "conversation_id", "conversation__title", "headline")[: MAX_RESULTS * 4]
    )
    titles = (
        scope.annotate(document=SearchVector("title", config="english"))
        .filter(document=ts_query)
        .annotate(rank=SearchRank(F("document"), ts_query))
        .annotate(
            headline=SearchHeadline("title", ts_query, config="english", start_sel=_START, stop_sel=_STOP)
        )
        .order_by("-rank")
        .values("id", "title", "headline")[:MAX_RESULTS]
    )
    hits: dict[UUID, SearchHit] = {}
    for row in titles:
        hits[row["id"]] = SearchHit(row["id"], row["title"], _marked(row["headline"]), None)
    for row in messages:
        if row["conversation_id"] not in hits:
            hits[row["conversation_id"]] = SearchHit(
                row["conversation_id"], row["conversation__title"], _marked(row["headline"]), row["id"]
            )
    return list(hits.values())[:MAX_RESULTS]


def _search_portable(scope: QuerySet[Conversation], query: str) -> list[SearchHit]:
    """Every word must appear (case-insensitive) in the title or in one message."""
    words = query.split()
    hits: dict[UUID, SearchHit] = {}
    titles = scope
    for word in words:
        titles = titles.filter(title__icontains=word)
    for conversation in titles.order_by("-updated_at")[:MAX_RESULTS]:
        hits[conversation.id] = SearchHit(
            conversation.id, conversation.title, _snippet(conversation.title, words), None
        )
    messages = visible(Message.objects.filter(conversation__in=scope))
    for word in words:
        messages = messages.filter(content__icontains=word)
    for message in messages.select_related("conversation").order_by("-created_at")[: MAX_RESULTS * 4]:
        if message.conversation_id not in hits and len(hits) < MAX_RESULTS:
            hits[message.conversation_id] = SearchHit(
                message.conversation_id,
                message.conversation.title,
                _snippet(message.content, words),
                message.id,
            )
    return list(hits.values())


def _snippet(text: str, words: list[str]) -> SafeString:
    """About SNIPPET_CHARS around the first match, with every match marked."""
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    first = pattern.search(text)
    start = max(0, (first.start() if first else 0) - SNIPPET_CHARS // 3)
    end = min(len(text), start + SNIPPET_CHARS)
    excerpt = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
    return _marked(pattern.sub(lambda m: f"{_START}{m.group(0)}{_STOP}", excerpt))


def _marked(text: str) -> SafeString:
    # Escape everything the user or the model wrote, then turn our markers into tags.
    escaped = str(escape(" ".join(text.split())))
    return mark_safe(escaped.replace(escape(_START), "<mark>").replace(escape(_STOP), "</mark>"))  # noqa: S308
