"""The usage pages at a million messages: each aggregate query over 30 days and over a year, and the pages served.

Bulk-creates `--messages` messages (half the person's, half replies with
token counts) in `--conversations` conversations of `--users` people, spread
over the last 365 days; a twentieth of the conversations come through one of
`--keys` API keys. In a temporary database: a SQLite file, or with
`--postgres` a fresh database on the PostgreSQL at 127.0.0.1:5432 (its own
name, dropped afterwards; never the tests' `test`). Then times, as the
median of `--repeat` runs, the selectors of webapp/usage/selectors.py and the
pages through Django's test client, with their query counts.

    .venv/bin/python bench/usage.py
    .venv/bin/python bench/usage.py --postgres --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import cpu_model, django_on_a_temporary_database, fmt, format_table, median_ms  # noqa: E402

NOW = datetime.now(UTC)
BATCH = 10_000


def build(*, messages: int, conversations: int, users: int, keys: int) -> int:
    """People, keys, conversations and their messages, all bulk-created; returns one person's id (all use about as much)."""
    from django.contrib.auth import get_user_model

    from webapp.api.models import ApiConversation, ApiKey
    from webapp.chat.models import Conversation

    rng = random.Random(17)
    people = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"user{n}", password="!") for n in range(users)], batch_size=BATCH
    )
    api_keys = ApiKey.objects.bulk_create(
        [
            ApiKey(
                owner=people[n % users],
                name=f"key {n}",
                prefix=f"mck-{n:08d}",
                key_hash=secrets.token_hex(32),
            )
            for n in range(keys)
        ]
    )
    chats = Conversation.objects.bulk_create(
        [Conversation(owner=people[n % users]) for n in range(conversations)], batch_size=BATCH
    )
    ApiConversation.objects.bulk_create(
        [
            ApiConversation(conversation=chat, api_key=api_keys[n % keys])
            for n, chat in enumerate(chats[::20])
        ],
        batch_size=BATCH,
    )
    per_chat = messages // conversations
    rows = []
    for chat in chats:
        # A conversation lasts a few days somewhere in the last year; its turns follow one another.
        at = NOW - timedelta(days=rng.uniform(0, 362))
        for turn in range(per_chat):
            at += timedelta(seconds=rng.uniform(5, 600))
            reply = turn % 2 == 1
            rows.append(
                (
                    "assistant" if reply else "user",
                    chat.pk,
                    min(at, NOW),
                    rng.randint(20, 4000) if reply else None,
                    rng.randint(1, 800) if reply else None,
                )
            )
        if len(rows) >= BATCH:
            _insert_messages(rows)
            rows = []
    _insert_messages(rows)
    return people[0].pk


def _insert_messages(rows: list[tuple]) -> None:
    """Messages (role, conversation id, created_at, prompt and completion tokens) in one executemany.

    Not bulk_create: a million model instances cost minutes of CPU on a
    shared 2-core machine; the values still go through Django's adapters.
    """
    from django.db import connection

    from webapp.chat.models import Message

    uuid_field = Message._meta.get_field("id")
    columns = "id, conversation_id, role, content, status, params, error, model_name, prompt_tokens, completion_tokens, created_at, updated_at"
    sql = f"INSERT INTO {Message._meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * 12)})"
    prepared = []
    for role, conversation_id, at, tokens_in, tokens_out in rows:
        stamp = connection.ops.adapt_datetimefield_value(at)
        content = "an answer" if role == "assistant" else "a question"
        prepared.append(
            (
                uuid_field.get_db_prep_value(uuid.uuid4(), connection),
                uuid_field.get_db_prep_value(conversation_id, connection),
                role,
                content,
                "complete",
                "{}",
                "",
                "",
                tokens_in,
                tokens_out,
                stamp,
                stamp,
            )
        )
    with connection.cursor() as cursor:
        cursor.executemany(sql, prepared)


def measure_queries(person: int, repeat: int) -> list[tuple[str, int, int, float]]:
    """(query, days, rows, median ms) for each selector, over 30 days and over a year."""
    from webapp.usage import selectors
    from webapp.usage.selectors import DIMENSIONS, Window

    today = NOW.date()
    queries = []
    for days in (30, 366):
        window = Window(today - timedelta(days=days - 1), today)
        for label, run in (
            ("one person per day", lambda w=window: selectors.usage_of_person(w, person)),
            ("everybody per day", lambda w=window: selectors.usage_per_day(w)),
            ("per person", lambda w=window: selectors.usage_by(DIMENSIONS["people"], w)),
            ("per API key", lambda w=window: selectors.usage_by(DIMENSIONS["keys"], w)),
            ("API keys per day", lambda w=window: selectors.usage_per_day(w, dimension=DIMENSIONS["keys"])),
            ("per person per day (CSV)", lambda w=window: selectors.usage_by_day(DIMENSIONS["people"], w)),
            ("everybody per day, Django's TruncDate", lambda w=window: _per_day_with_truncdate(w)),
        ):
            queries.append((label, days, len(run()), median_ms(run, repeat)))
    return queries


def _per_day_with_truncdate(window: object) -> dict:
    """Everybody per day with Django's TruncDate, what selectors.UtcDay replaces on SQLite (the same figures)."""
    from django.db.models.functions import TruncDate

    from webapp.chat.models import Message
    from webapp.usage.selectors import _TOTALS

    rows = (
        Message.objects.filter(created_at__gte=window.since, created_at__lt=window.until)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(**_TOTALS)
        .order_by("day")
    )
    return {row["day"]: row for row in rows}


def measure_pages(person: int, repeat: int) -> list[list[str]]:
    """The pages through Django's test client: median ms and queries, 30 days."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    today = NOW.date()
    pages = []
    staff = get_user_model().objects.create_user(username="bench-staff", is_staff=True)
    client = Client()
    client.force_login(staff)
    owner = Client()
    owner.force_login(get_user_model().objects.get(pk=person))
    first = (today - timedelta(days=29)).isoformat()
    for label, browser, path, params in (
        ("a person's /usage/", owner, "/usage/", {}),
        ("/usage/people/", client, "/usage/people/", {}),
        ("/usage/keys/", client, "/usage/keys/", {}),
        ("/usage/people/csv/", client, "/usage/people/csv/", {"from": first}),
    ):
        executed: list[str] = []
        with connection.execute_wrapper(
            lambda run, sql, *rest, e=executed: (e.append(sql), run(sql, *rest))[1]
        ):
            assert browser.get(path, params).status_code == 200  # and the warm-up: templates compiled
        served = median_ms(lambda b=browser, p=path, q=params: b.get(p, q), repeat)
        pages.append([label, fmt(served, 1), str(len(executed))])
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="a temporary PostgreSQL database, not SQLite")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    with django_on_a_temporary_database(postgres=args.postgres, prefix="usage-bench-") as database:
        from django.db import connection

        began = time.perf_counter()
        person = build(
            messages=args.messages, conversations=args.conversations, users=args.users, keys=args.keys
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "VACUUM ANALYZE")
        built_s = time.perf_counter() - began
        queries = measure_queries(person, args.repeat)
        pages = measure_pages(person, args.repeat)
        # The same queries without the usage index, in the same run: the ratio is the figure to quote.
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX chat_message_usage_idx")
            cursor.execute("ANALYZE")
        without = measure_queries(person, args.repeat)

    print(
        f"{len(os.sched_getaffinity(0))} cores ({cpu_model()}), Python {platform.python_version()}, {database}; "
        f"load average before the run: {load}"
    )
    print(
        f"{args.messages:,} messages in {args.conversations:,} conversations of {args.users:,} people "
        f"({args.keys} API keys) over 365 days, built in {built_s:.0f} s\n"
    )
    print("The selectors (webapp/usage/selectors.py), median ms, with and without chat_message_usage_idx:")
    rows = [
        [label, str(days), f"{count:,}", fmt(ms, 1), fmt(plain, 1), f"{plain / ms:.1f}x"]
        for (label, days, count, ms), (*_, plain) in zip(queries, without, strict=True)
    ]
    print(
        format_table(
            ["query", "days", "rows", "ms", "ms without the index", "ratio"], rows, markdown=args.markdown
        )
    )
    print("\nThe pages (30 days), median ms:")
    print(format_table(["page", "ms", "queries"], pages, markdown=args.markdown))


if __name__ == "__main__":
    main()
