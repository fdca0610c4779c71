"""Retention on its schedule: Celery beat and the maintenance worker, really started on the real Redis.

Beat sends `apply_retention` every second to the `maintenance` queue; the
worker deletes a temporary chat past its time and leaves one still running.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def make_temporary_chats(stack: Stack) -> dict[str, str]:
    """One temporary chat that ended an hour ago and one with a day left; their ids."""
    code = (
        "import json; from datetime import timedelta; from django.utils import timezone;"
        "from django.contrib.auth import get_user_model; from webapp.chat.models import Conversation, Message;"
        "owner = get_user_model().objects.create_user(username='retention-it');"
        "ids = {};"
        "\nfor name, hours in (('ended', -1), ('running', 24)):"
        "\n    c = Conversation.objects.create(owner=owner, expires_at=timezone.now() + timedelta(hours=hours))"
        "\n    Message.objects.create(conversation=c, role='user', content=name)"
        "\n    ids[name] = str(c.id)"
        "\nprint(json.dumps(ids))"
    )
    return json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])


def remaining(stack: Stack, ids: dict[str, str]) -> set[str]:
    code = (
        "from webapp.chat.models import Conversation;"
        f"print(' '.join(str(i) for i in Conversation.objects.filter(id__in={list(ids.values())!r})"
        ".values_list('id', flat=True)))"
    )
    found = stack.manage("shell", "-c", code).strip().splitlines()
    return set(found[-1].split()) if found else set()


def test_beat_and_the_maintenance_worker_delete_an_ended_temporary_chat(stack: Stack) -> None:
    ids = make_temporary_chats(stack)
    maintenance = stack.start_maintenance(RETENTION_INTERVAL_S="1")
    try:
        deadline = time.monotonic() + 90
        while ids["ended"] in remaining(stack, ids):
            assert maintenance.poll() is None, stack.logs()
            assert time.monotonic() < deadline, f"the ended chat is still there:\n{stack.logs()}"
            time.sleep(1)
        assert remaining(stack, ids) == {ids["running"]}
        log = "".join(path.read_text(errors="replace") for path in stack.tmp.glob("maintenance-*.log"))
        assert "Sending due task apply-retention (webapp.chat.apply_retention)" in log
        assert f"retention deleted conversation {ids['ended']}" in log and "temporary chat ended" in log
    finally:
        stack.kill(maintenance)
    # Its beat, a process the worker forked, ended with it (it used to be left running, adopted by init).
    schedule = str(stack.tmp / "celerybeat-schedule")
    assert not [cmdline for cmdline in running_commands() if schedule in cmdline]


def running_commands() -> list[str]:
    commands = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            commands.append(path.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # ended meanwhile
            continue
    return commands
