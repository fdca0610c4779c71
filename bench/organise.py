"""Organising at scale: the sidebar and the list page with pins first, and a bulk action, for one person.

Bulk-creates `--conversations` conversations for one person (one in 50
pinned, one in 10 archived, a third in one of 20 folders) beside 20 other
people's, in a temporary database (a SQLite file, or with `--postgres` a fresh
PostgreSQL database, dropped afterwards), and times, median of `--repeat`:

- the sidebar's reads: `listed_conversations(...)[:51]`, the folders, the groups;
- the list page's first page and its count, and one folder's;
- a bulk archive of 200 conversations (checked, then one UPDATE), and back;

then the same reads again without the index the migration adds on (owner,
-pinned, -updated_at), `chat_conversation_listed_idx`, to show what it is for.

    .venv/bin/python bench/organise.py
    .venv/bin/python bench/organise.py --conversations 100000 --markdown
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import cpu_model, django_on_a_temporary_database, fmt, format_table, median_ms  # noqa: E402

OTHERS = 20
FOLDERS = 20
LISTED_INDEX = "chat_conversation_listed_idx"


def build(conversations: int) -> object:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from webapp.chat.models import Conversation, Folder

    rng = random.Random(5)
    people = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"person{n}", password="!") for n in range(OTHERS + 1)]
    )
    person = people[0]
    folders = Folder.objects.bulk_create([Folder(owner=person, name=f"Folder {n}") for n in range(FOLDERS)])
    now = timezone.now()
    for start in range(0, conversations, 1000):
        rows = []
        for n in range(start, min(start + 1000, conversations)):
            rows.append(
                Conversation(
                    owner=person,
                    title=f"Conversation {n}",
                    pinned=n % 50 == 0,
                    archived_at=now if n % 10 == 1 else None,
                    folder=folders[n % FOLDERS] if n % 3 == 0 else None,
                )
            )
            rows.append(Conversation(owner=rng.choice(people[1:]), title=f"Other {n}"))
        Conversation.objects.bulk_create(rows)
    return person


def reads(person: object, repeat: int) -> list[tuple[str, float]]:
    from django.core.paginator import Paginator

    from webapp.chat.selectors import folders_of, listed_conversations, sidebar_groups

    folder = folders_of(person).first()

    def sidebar() -> None:
        recent = list(listed_conversations(person)[:51])
        sidebar_groups(recent[:50], list(folders_of(person)))

    def list_page(**filters: object) -> None:
        page = Paginator(listed_conversations(person, **filters), 50).get_page(1)
        list(page)
        page.paginator.count  # noqa: B018  (the heading's count is a query of its own)

    return [
        ("sidebar (51 rows, folders, groups)", median_ms(sidebar, repeat)),
        ("list page 1 + count", median_ms(list_page, repeat)),
        ("one folder's page 1 + count", median_ms(lambda: list_page(folder=folder), repeat)),
        ("archive page 1 + count", median_ms(lambda: list_page(archived=True), repeat)),
    ]


def bulk(person: object, repeat: int) -> float:
    from webapp.chat import organise
    from webapp.chat.selectors import listed_conversations

    ids = [str(pk) for pk in listed_conversations(person).values_list("pk", flat=True)[:200]]

    def there_and_back() -> None:
        organise.conversations_bulk_archive(owner=person, conversation_ids=ids, archived=True)
        organise.conversations_bulk_archive(owner=person, conversation_ids=ids, archived=False)

    return median_ms(there_and_back, repeat) / 2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=20_000, help="the person's")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--postgres", action="store_true", help="a temporary PostgreSQL database, not SQLite")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    with django_on_a_temporary_database(postgres=args.postgres, prefix="organise-bench-") as database:
        from django.db import connection

        person = build(args.conversations)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        with_index = reads(person, args.repeat)
        bulk_ms = bulk(person, args.repeat)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX {LISTED_INDEX}")
            cursor.execute("ANALYZE")
        without = reads(person, args.repeat)
    rows = [
        [name, fmt(before, 2), fmt(after, 2)]
        for (name, before), (_, after) in zip(with_index, without, strict=True)
    ]
    rows.append(["bulk archive of 200 (check + UPDATE)", fmt(bulk_ms, 2), ""])
    print(
        f"{database}; {args.conversations:,} conversations of one person and as many of {OTHERS} others; "
        f"{len(os.sched_getaffinity(0))} cores ({cpu_model()}); load before: {load}"
    )
    print(
        format_table(
            ["ms (median)", "with the index", f"without {LISTED_INDEX}"], rows, markdown=args.markdown
        )
    )


if __name__ == "__main__":
    main()
