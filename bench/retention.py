"""Retention at scale: how long a run takes, and how long each batch holds the database's write lock.

Bulk-creates `--conversations` conversations of `--messages` messages each for
1,000 people, last touched at times spread over two years, in a temporary
database (a SQLite file, or with `--postgres` a fresh PostgreSQL database,
dropped afterwards). With RETENTION_DAYS=365, a tenth of the people choosing 30
days, a fiftieth of the conversations temporary and ended, and one in a
hundred held by an open moderation event (with a closed one on another one in
a hundred), it times:

- the dry run (what `manage.py apply_retention --dry-run` counts);
- the real run at `--batch-size`: conversations and messages deleted a
  second, each batch (finding it, then its transaction), and each batch's
  transaction alone (on SQLite, every send waits for it: the write lock); run
  it again with another size to compare;
- the run after it, when nothing is due: what every scheduled run costs.

    .venv/bin/python bench/retention.py
    .venv/bin/python bench/retention.py --conversations 100000 --postgres --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import cpu_model, django_on_a_temporary_database, fmt, format_table  # noqa: E402

PEOPLE = 1000
NOW = datetime.now(UTC)


def build(conversations: int, messages: int) -> None:
    """People, their conversations and messages, events and choices: all bulk-created."""
    from django.contrib.auth import get_user_model

    from webapp.accounts.models import AccountSettings
    from webapp.chat.models import Conversation, Message
    from webapp.moderation.models import ModerationEvent, ReviewStatus

    rng = random.Random(11)
    people = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"person{n}", password="!") for n in range(PEOPLE)]
    )
    AccountSettings.objects.bulk_create(
        [AccountSettings(user=person, retention_days=30) for person in people[: PEOPLE // 10]]
    )
    for start in range(0, conversations, 5000):
        batch = Conversation.objects.bulk_create(
            [
                Conversation(
                    owner=people[n % PEOPLE],
                    title=f"conversation {n}",
                    expires_at=NOW - timedelta(hours=1) if n % 50 == 0 else None,
                )
                for n in range(start, min(start + 5000, conversations))
            ]
        )
        rows = [
            Message(
                conversation=conversation, role="assistant" if m % 2 else "user", content="some words " * 20
            )
            for conversation in batch
            for m in range(messages)
        ]
        Message.objects.bulk_create(rows, batch_size=5000)
        replies = [row for row in rows if row.role == "assistant"][:: messages // 2 or 1]
        events = [
            ModerationEvent(
                message=reply,
                user_id=reply.conversation.owner_id,
                hook="rules",
                stage="output",
                action="flag",
                excerpt=reply.content,
                status=ReviewStatus.OPEN if n % 100 == 0 else ReviewStatus.CONFIRMED,
            )
            for n, reply in enumerate(replies)
            if n % 100 in (0, 50)
        ]
        ModerationEvent.objects.bulk_create(events)
    # Last touched on a day of the last two years, as an update: auto_now would stamp them all "now".
    by_day: dict[int, list[object]] = {}
    for conversation_id in Conversation.objects.values_list("id", flat=True):
        by_day.setdefault(rng.randrange(730), []).append(conversation_id)
    for day, ids in by_day.items():
        for start in range(0, len(ids), 500):
            Conversation.objects.filter(id__in=ids[start : start + 500]).update(
                updated_at=NOW - timedelta(days=day, hours=rng.uniform(0, 24))
            )


def timed(function, *args, **kwargs) -> tuple[float, object]:
    began = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - began, result


class _TimedTransactions:
    """Stands in for `django.db.transaction` in the retention module: times each `atomic()` block."""

    def __init__(self) -> None:
        from django.db import transaction

        self.transaction = transaction
        self.seconds: list[float] = []

    def atomic(self):  # a context manager, as transaction.atomic()
        import contextlib

        @contextlib.contextmanager
        def timed_block():
            began = time.perf_counter()
            with self.transaction.atomic():
                yield
            self.seconds.append(time.perf_counter() - began)

        return timed_block()


def measure_run(batch_size: int) -> list[str]:
    """One real run at this batch size, then the idle run after it."""
    from webapp.chat import retention

    batch_s: list[float] = []
    delete_batch = retention._delete_batch
    transactions = _TimedTransactions()
    retention.transaction = transactions

    def timed_batch(**kwargs) -> bool:
        seconds, more = timed(delete_batch, **kwargs)
        if more:
            batch_s.append(seconds)
        return more

    retention._delete_batch = timed_batch
    try:
        seconds, report = timed(retention.retention_apply, batch_size=batch_size)
    finally:
        retention._delete_batch = delete_batch
        retention.transaction = transactions.transaction
    idle_s, again = timed(retention.retention_apply, batch_size=batch_size)
    assert again.conversations == 0
    return [
        f"{batch_size:,}",
        f"{report.conversations:,}",
        f"{report.messages:,}",
        f"{report.held:,}",
        fmt(seconds, 2),
        f"{report.conversations / seconds:,.0f}",
        f"{report.messages / seconds:,.0f}",
        fmt(statistics.median(batch_s) * 1000, 0),
        fmt(statistics.median(transactions.seconds) * 1000, 0),
        fmt(max(transactions.seconds) * 1000, 0),
        fmt(idle_s * 1000, 0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=50_000)
    parser.add_argument("--messages", type=int, default=4, help="per conversation")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--postgres", action="store_true", help="a temporary PostgreSQL database, not SQLite")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows, dry = [], None
    os.environ["RETENTION_DAYS"] = "365"  # read by the settings, which the context sets up
    with django_on_a_temporary_database(postgres=args.postgres, prefix="retention-bench-") as database:
        from django.db import connection

        from webapp.chat.retention import retention_apply

        built_s, _ = timed(build, args.conversations, args.messages)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        dry_s, dry = timed(retention_apply, dry_run=True)
        rows.append(measure_run(args.batch_size))

    print(
        f"{len(os.sched_getaffinity(0))} cores ({cpu_model()}), Python {platform.python_version()}, {database}; "
        f"load average before the run: {load}"
    )
    print(
        f"{args.conversations:,} conversations of {args.messages} messages built in {built_s:.1f} s; "
        f"RETENTION_DAYS=365, a tenth of the people at 30 days\n"
    )
    print(
        f"dry run: {dry_s * 1000:,.0f} ms to count {dry.conversations:,} conversations "
        f"({dry.temporary:,} temporary) and {dry.messages:,} messages due, {dry.held:,} on hold\n"
    )
    print(
        format_table(
            [
                "batch",
                "conversations",
                "messages",
                "held",
                "run s",
                "conv/s",
                "msg/s",
                "batch p50 ms",
                "locked p50 ms",
                "locked max ms",
                "idle run ms",
            ],
            rows,
            markdown=args.markdown,
        )
    )


if __name__ == "__main__":
    main()
