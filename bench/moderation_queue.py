"""The moderation queue at 100,000 events: keyset pages against OFFSET pages, at the top and deep down.

Bulk-creates `--events` moderation events (and `--reports` reports) over 90
days on replies of 500 users, in a temporary database (a SQLite file, or with
`--postgres` a fresh database on the PostgreSQL at 127.0.0.1:5432, dropped
afterwards), a tenth of them still open. Then times, as the median of
`--repeat` runs:

- the queue's list query for a page of `--size` items, by keyset (the
  dashboard: rows older than a cursor on (created_at, id)) and by OFFSET (what
  Django's Paginator does), on the first page, half way down and at the end;
- the whole page as the dashboard builds it (`queue_page`: events, reports,
  and the conversation around each item) and as it is served (GET /moderation/
  through Django's test client, templates included), with its query count;
- the stats page's figures over 90 days (`dashboard_stats`).

    .venv/bin/python bench/moderation_queue.py
    .venv/bin/python bench/moderation_queue.py --postgres --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import cpu_model, django_on_a_temporary_database, fmt, format_table, median_ms  # noqa: E402

USERS = 500
EVENTS_PER_REPLY = 5
HOOKS = ["rules", "pii", "classifier", "judge"]
NOW = datetime.now(UTC)


def build(events: int, reports: int) -> None:
    """Users, one exchange per five events, the events and reports: all bulk-created, times spread over 90 days."""
    from django.contrib.auth import get_user_model

    from inference.moderation.base import CATEGORIES
    from webapp.chat.models import Conversation, Message
    from webapp.moderation.models import ModerationEvent, Report

    # The bench sets its own times; auto_now_add would stamp them all "now".
    for model in (ModerationEvent, Report, Message):
        model._meta.get_field("created_at").auto_now_add = False
    rng = random.Random(5)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"user{n}", password="!") for n in range(USERS)]
    )
    replies_needed = events // EVENTS_PER_REPLY
    conversations = Conversation.objects.bulk_create(
        [Conversation(owner=users[n % USERS]) for n in range(replies_needed)], batch_size=5000
    )
    messages, replies = [], []
    for conversation in conversations:
        at = NOW - timedelta(seconds=rng.uniform(0, 90 * 86400))
        question = Message(
            id=uuid.uuid4(), conversation=conversation, role="user", content="a question", created_at=at
        )
        messages.append(question)
        reply = Message(
            conversation=conversation, parent=question, role="assistant", content="an answer", created_at=at
        )
        messages.append(reply)
        replies.append(reply)
    Message.objects.bulk_create(messages, batch_size=5000)
    rows = []
    for n in range(events):
        reply = replies[n // EVENTS_PER_REPLY]
        category = rng.choice(CATEGORIES)
        rows.append(
            ModerationEvent(
                message=reply,
                user_id=reply.conversation.owner_id,
                hook=rng.choice(HOOKS),
                stage=rng.choice(["input", "stream", "output"]),
                action=rng.choice(["flag", "flag", "redact", "block"]),
                categories=[category],
                category=category,
                latency_ms=rng.lognormvariate(0, 1),
                status="open" if rng.random() < 0.1 else rng.choice(["dismissed", "confirmed"]),
                created_at=reply.created_at + timedelta(milliseconds=n % EVENTS_PER_REPLY),
            )
        )
        if len(rows) == 5000:
            ModerationEvent.objects.bulk_create(rows)
            rows = []
    ModerationEvent.objects.bulk_create(rows)
    Report.objects.bulk_create(
        [
            Report(
                reporter=users[n % USERS],
                message=replies[rng.randrange(len(replies))],
                reason="harmful",
                status="open" if n % 10 == 0 else "dismissed",
                created_at=NOW - timedelta(seconds=rng.uniform(0, 90 * 86400)),
            )
            for n in range(reports)
        ],
        batch_size=5000,
    )


def measure(size: int, repeat: int) -> tuple[list[list[str]], list[list[str]], float]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from webapp.moderation.queue import Cursor, QueueFilters, events_for_queue, queue_page
    from webapp.moderation.stats import dashboard_stats

    lists, pages = [], []
    for label, filters in (
        ("any status", QueueFilters(status="", kind="event")),
        ("open", QueueFilters(kind="event")),
    ):
        ordered = events_for_queue(filters).order_by("-created_at", "-id")
        total = ordered.count()
        for depth in (0, total // 2, total - size):
            cursor = None
            if depth:
                created_at, pk = ordered.values_list("created_at", "id")[depth - 1]
                cursor = Cursor(created_at, "event", pk)
            keyset = median_ms(lambda o=ordered, c=cursor: list(_older(o, c)[:size]), repeat)
            offset = median_ms(lambda o=ordered, d=depth: list(o[d : d + size]), repeat)
            assert [e.pk for e in _older(ordered, cursor)[:size]] == [
                e.pk for e in ordered[depth : depth + size]
            ]
            lists.append([label, f"{depth:,}", fmt(keyset, 2), fmt(offset, 2), f"{offset / keyset:.1f}x"])

    moderator = get_user_model().objects.create_user(username="moderator", is_staff=True)
    client = Client()
    client.force_login(moderator)
    ordered = events_for_queue(QueueFilters(status="")).order_by("-created_at", "-id")
    total = ordered.count()
    for depth in (0, total - size):
        cursor = None
        if depth:
            created_at, pk = ordered.values_list("created_at", "id")[depth - 1]
            cursor = Cursor(created_at, "event", pk)
        built = median_ms(lambda c=cursor: queue_page(QueueFilters(status=""), before=c, size=size), repeat)
        params = {"status": "any", "size": size, **({"before": cursor.encode()} if cursor else {})}
        served = median_ms(lambda p=params: client.get("/moderation/", p), repeat)
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/moderation/", params).status_code == 200
        pages.append([f"{depth:,}", fmt(built, 1), fmt(served, 1), str(len(captured))])
    stats_ms = median_ms(lambda: dashboard_stats(days=90), max(1, repeat // 2))
    return lists, pages, stats_ms


def _older(ordered, cursor):
    from webapp.moderation.queue import _older_than

    return _older_than(ordered, "event", cursor)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--reports", type=int, default=5_000)
    parser.add_argument("--size", type=int, default=25, help="items per page")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--postgres", action="store_true", help="a temporary PostgreSQL database, not SQLite")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    with django_on_a_temporary_database(postgres=args.postgres, prefix="queue-bench-") as database:
        from django.db import connection

        began = time.perf_counter()
        build(args.events, args.reports)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        built_s = time.perf_counter() - began
        lists, pages, stats_ms = measure(args.size, args.repeat)

    print(
        f"{len(os.sched_getaffinity(0))} cores ({cpu_model()}), Python {platform.python_version()}, {database}; "
        f"load average before the run: {load}"
    )
    print(
        f"{args.events:,} events and {args.reports:,} reports built in {built_s:.1f} s; pages of {args.size}\n"
    )
    print("The list query alone (events), median ms:")
    print(
        format_table(
            ["status", "rows before the page", "keyset ms", "OFFSET ms", "OFFSET / keyset"],
            lists,
            markdown=args.markdown,
        )
    )
    print("\nThe whole queue page (events and reports, any status), median ms:")
    print(
        format_table(
            ["rows before the page", "queue_page ms", "GET /moderation/ ms", "queries"],
            pages,
            markdown=args.markdown,
        )
    )
    print(f"\nStats over 90 days (dashboard_stats): {stats_ms:.0f} ms")


if __name__ == "__main__":
    main()
