"""`/healthz`: is the database there, does Redis answer, which workers and model serve."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse

from webapp.chat import sweeper
from webapp.chat.live import redis_client
from webapp.workers import live_workers, model_summary, queue_length

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:  # a health check reports every failure, whatever it is
        checks["database"] = f"error: {error.__class__.__name__}"
    workers: list[dict[str, object]] = []
    queued = None
    try:
        redis_client().ping()
        checks["redis"] = "ok"
        workers = live_workers()
        queued = queue_length()
    except Exception as error:
        checks["redis"] = f"error: {error.__class__.__name__}"
    if healthy := checks["database"] == "ok" and checks["redis"] == "ok":
        # Every open page polls here: replies whose worker died end even when no worker is left.
        try:
            sweeper.sweep(owner="web")
        except Exception:
            logger.warning("the sweep failed", exc_info=True)
    summary = model_summary(workers)
    body = {
        "status": "ok" if healthy and summary["state"] == "ready" else ("degraded" if healthy else "error"),
        **checks,
        "model": summary,
        "queue_length": queued,
        "workers": workers,
    }
    return JsonResponse(body, status=200 if healthy else 503)
