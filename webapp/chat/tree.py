"""A conversation's messages as a tree: the path shown, siblings, every path.

Each message has a parent (None for a first message); the messages of one
parent are siblings, the versions that regenerates and edits made, oldest
first. A conversation shows one path, from a root down to its remembered
`current_leaf`. Nothing is ever deleted from the tree.

`MessageTree` is plain Python over `(id, parent id)` rows. A reply a
moderator hid is in the rows but out of the tree its owner sees: its
children hang from the nearest message still shown. The functions after it
read the rows from the database.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import F

from webapp.chat.models import Conversation, Message

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Position(Generic[K]):
    """Where a message sits: its parent and its siblings (itself among them), oldest first."""

    parent_id: K | None
    sibling_ids: tuple[K, ...]
    index: int

    @property
    def count(self) -> int:
        return len(self.sibling_ids)

    @property
    def number(self) -> int:
        """The version shown, counted from 1 (`2` of `‹ 2/3 ›`)."""
        return self.index + 1

    @property
    def previous_id(self) -> K | None:
        return self.sibling_ids[self.index - 1] if self.index > 0 else None

    @property
    def next_id(self) -> K | None:
        return self.sibling_ids[self.index + 1] if self.index + 1 < self.count else None

    def fields(self) -> dict[str, Any]:
        """The tree fields of a message in the websocket events (docs/protocol.md)."""
        return {
            "parent_id": None if self.parent_id is None else str(self.parent_id),
            "sibling_index": self.index,
            "sibling_count": self.count,
            "sibling_ids": [str(sibling) for sibling in self.sibling_ids],
        }


class MessageTree(Generic[K]):
    """The tree of `rows`, given in creation order, without the `hidden` messages."""

    def __init__(self, rows: Iterable[tuple[K, K | None]], hidden: Collection[K] = ()) -> None:
        real_parent: dict[K, K | None] = dict(rows)
        self.order = {key: number for number, key in enumerate(real_parent)}
        self.parent: dict[K, K | None] = {}
        self.children: dict[K | None, list[K]] = {None: []}
        for key, parent in real_parent.items():
            if key in hidden:
                continue
            seen = 0
            # Up past hidden replies to the nearest message shown; a parent
            # missing from the rows makes a root (and a loop cannot hang us).
            while parent is not None and (parent in hidden or parent not in real_parent):
                parent = real_parent.get(parent) if parent in hidden else None
                seen += 1
                if seen > len(real_parent):
                    parent = None
            self.parent[key] = parent
            self.children.setdefault(key, [])
        for key, parent in self.parent.items():
            self.children[parent].append(key)

    def __contains__(self, key: object) -> bool:
        return key in self.parent

    def __len__(self) -> int:
        return len(self.parent)

    def position(self, key: K) -> Position[K]:
        parent = self.parent[key]
        siblings = tuple(self.children[parent])
        return Position(parent, siblings, siblings.index(key))

    def path_to(self, key: K | None) -> list[K]:
        """From a root down to `key`, both included; [] for None."""
        path: list[K] = []
        seen: set[K] = set()
        while key is not None and key not in seen:  # a loop (never written here) ends the walk
            path.append(key)
            seen.add(key)
            key = self.parent[key]
        path.reverse()
        return path

    def newest_under(self, key: K) -> K:
        """The newest message of `key`'s subtree (`key` when it has no children): where a branch was left."""
        newest, stack = key, [key]
        while stack:
            for child in self.children[stack.pop()]:
                if self.order[child] > self.order[newest]:
                    newest = child
                stack.append(child)
        return newest

    def leaf(self, remembered: K | None) -> K | None:
        """The end of the path shown: the remembered leaf, else the newest message."""
        if remembered in self.parent:
            return remembered
        return max(self.parent, key=self.order.__getitem__, default=None)

    def shown_path(self, remembered: K | None) -> list[K]:
        return self.path_to(self.leaf(remembered))

    def leaves(self) -> list[K]:
        """Every message without children, oldest first: each ends one path."""
        return [key for key in self.parent if not self.children[key]]

    def all_paths(self) -> list[list[K]]:
        return [self.path_to(leaf) for leaf in self.leaves()]


# --- reads ---------------------------------------------------------------------------------


def tree_of(conversation: Conversation | Any, *, with_hidden: bool = False) -> MessageTree:
    """The tree of a conversation's messages, keyed by UUID; one query.

    Hidden replies are left out, as their owner sees it; `with_hidden`
    keeps them (staff).
    """
    rows = (
        Message.objects.filter(conversation_id=conversation.pk)
        .annotate(hidden_id=F("moderation_hidden__id"))
        .order_by("created_at", "id")
        .values_list("id", "parent_id", "hidden_id")
    )
    rows = list(rows)
    hidden = set() if with_hidden else {key for key, _, hidden_id in rows if hidden_id is not None}
    return MessageTree([(key, parent) for key, parent, _ in rows], hidden)


def tree_of_messages(messages: Sequence[Message], *, hidden: Collection[Any] = ()) -> MessageTree:
    """The tree of messages already loaded, in creation order."""
    return MessageTree([(message.id, message.parent_id) for message in messages], hidden)


def with_positions(messages: Iterable[Message], tree: MessageTree) -> list[Message]:
    """The messages, each given its `position` in `tree`."""
    listed = list(messages)
    for message in listed:
        message.position = tree.position(message.id)
    return listed


def shown_path(conversation: Conversation) -> list[Message]:
    """The messages of the path shown, first to last, each with its `position`; two queries."""
    tree = tree_of(conversation)
    path = tree.shown_path(conversation.current_leaf_id)
    by_id = Message.objects.in_bulk(path)
    return with_positions((by_id[key] for key in path if key in by_id), tree)


def leaf_id(conversation: Conversation) -> Any:
    """The id of the path's last message, where a new message goes; None in an empty conversation."""
    if conversation.current_leaf_id is not None:
        return conversation.current_leaf_id
    # Rows written without the tree (bulk inserts): their newest message, as `MessageTree.leaf`.
    return (
        Message.objects.filter(conversation_id=conversation.pk)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
        .first()
    )


def message_position(message: Message) -> Position:
    """Where one message sits among the versions its owner sees; one query."""
    tree = tree_of(message.conversation)
    if message.id not in tree:  # hidden itself: alone
        return Position(message.parent_id, (message.id,), 0)
    return tree.position(message.id)
