"""The tree migration on a filled database: linear conversations become one path each, nothing lost."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from webapp.chat.models import Conversation
from webapp.chat.selectors import messages_of

BEFORE = [("chat", "0005_message_usage_index")]
TREE = [("chat", "0006_message_tree")]


@pytest.fixture
def executor():
    executor = MigrationExecutor(connection)
    yield executor
    # Leave the database as the other tests expect it: every migration applied.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_linear_conversations_become_one_path_each(executor: MigrationExecutor) -> None:
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    User = old.get_model(*settings.AUTH_USER_MODEL.split("."))
    OldConversation, OldMessage = old.get_model("chat", "Conversation"), old.get_model("chat", "Message")
    owner = User.objects.create(username="before-trees")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    expected: dict[object, list[tuple[str, str]]] = {}
    for number in range(3):
        conversation = OldConversation.objects.create(owner_id=owner.pk, title=f"chat {number}")
        rows = [("user" if i % 2 == 0 else "assistant", f"c{number} m{i}") for i in range(2 * number + 1)]
        for i, (role, content) in enumerate(rows):
            message = OldMessage.objects.create(conversation=conversation, role=role, content=content)
            # Two messages share a time: the id breaks the tie, as the page ordered them.
            moment = start + dt.timedelta(minutes=i - (1 if i == 2 else 0))
            OldMessage.objects.filter(pk=message.pk).update(created_at=moment)
        expected[conversation.pk] = sorted(
            OldMessage.objects.filter(conversation=conversation).values_list("created_at", "id", "content")
        )
    empty = OldConversation.objects.create(owner_id=owner.pk, title="empty")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(TREE)
    # And every migration after it (they add columns, such as the folders'), so today's models read the rows.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    for conversation_id, rows in expected.items():
        conversation = Conversation.objects.get(pk=conversation_id)
        ids = [message_id for _, message_id, _ in rows]
        assert conversation.current_leaf_id == ids[-1]
        stored = {m.id: m.parent_id for m in conversation.messages.all()}
        assert stored == dict(zip(ids, [None, *ids[:-1]], strict=True))
        assert [m.content for m in messages_of(conversation)] == [content for *_, content in rows]
        assert all(m.position.count == 1 for m in messages_of(conversation))
    assert Conversation.objects.get(pk=empty.pk).current_leaf_id is None
