"""The maintenance worker's Celery tasks: thin glue over services, sent by Celery beat.

Loaded only by the maintenance worker (`-I webapp.chat.tasks`, scripts/supervisord.conf);
CELERY_BEAT_SCHEDULE in settings says how often, CELERY_TASK_ROUTES which queue.
"""

from __future__ import annotations

from typing import Any

from webapp.celery import app
from webapp.chat.retention import retention_apply

APPLY_RETENTION_TASK = "webapp.chat.apply_retention"


@app.task(name=APPLY_RETENTION_TASK, ignore_result=True)
def apply_retention() -> dict[str, Any]:
    """Delete what retention and temporary chats say is due (idempotent: a second run finds nothing)."""
    report = retention_apply()
    return {"conversations": report.conversations, "messages": report.messages, "held": report.held}
