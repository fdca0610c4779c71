"""The migration that lets moderation records outlive their conversation fills the reports' excerpts."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("moderation", "0003_profanity")]
AFTER = [("moderation", "0004_moderation_records_outlive_conversations")]


def migrate_to(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    # The chat app stays at its latest migration: its rows are made with the models of
    # today's tables (a later chat migration may add a column the insert must fill).
    targets = [*targets, *executor.loader.graph.leaf_nodes("chat")]
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_reports_stored_before_get_the_reported_text_and_survive_their_conversation() -> None:
    old = migrate_to(BEFORE)
    try:
        owner = old.get_model("auth", "User").objects.create(username="bob")
        conversation = old.get_model("chat", "Conversation").objects.create(owner=owner)
        reply = old.get_model("chat", "Message").objects.create(
            conversation=conversation, role="assistant", content="x" * 5000
        )
        old.get_model("moderation", "Report").objects.create(reporter=owner, message=reply, reason="harmful")

        new = migrate_to(AFTER)
        report = new.get_model("moderation", "Report").objects.get()
        assert report.excerpt == "x" * 4000  # as long as an event's excerpt may be
        new.get_model("chat", "Conversation").objects.all().delete()
        report.refresh_from_db()
        assert report.message_id is None and len(report.excerpt) == 4000
    finally:
        call_command("migrate", verbosity=0)  # the rest of the run expects every migration
