"""What the access layer adds to a send: its reads, per call, on a fresh SQLite file (or PostgreSQL).

These were a `send`'s reads until session 5: `limits_for_id` (the largest
`max_tokens`) and `active_limits_for_id` (the counts, and whether the account
is still active). A send now reads the same limits within the one query of
its checks (`webapp.chat.selectors.send_state`, docs/benchmarks.md:
`bench/stack.py`); `limits_for_id` still serves the settings' check, and the
moderators' feed asks `role_of` afresh for each item. This times each
call for a person in 0, 1 and 5 groups with limits, with 2,000 people and
50 groups in the database, so the indexes, not an empty table, answer.

    .venv/bin/python bench/access.py
    .venv/bin/python bench/access.py --postgres --markdown
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import cpu_model, fmt, format_table, percentile  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    """Microseconds per call, each timed alone, after a warm-up."""
    for _ in range(20):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def populate(people: int, groups: int) -> dict[int, int]:
    """People and groups with limits; returns {groups a person is in: that person's id}."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from webapp.accounts.models import Account, GroupLimits

    users = get_user_model()
    users.objects.bulk_create(users(username=f"p{i}", password="!") for i in range(people))
    made = [Group(name=f"g{i}") for i in range(groups)]
    Group.objects.bulk_create(made)
    made = list(Group.objects.order_by("id"))
    GroupLimits.objects.bulk_create(
        GroupLimits(group=g, messages_per_minute=10 + i) for i, g in enumerate(made)
    )
    ids = list(users.objects.order_by("id").values_list("id", flat=True))
    membership = users.groups.through
    # Everybody is in some group, so the join has rows to skip past.
    membership.objects.bulk_create(
        membership(user_id=user_id, group_id=made[i % groups].id) for i, user_id in enumerate(ids[10:])
    )
    chosen = {0: ids[0], 1: ids[1], 5: ids[2]}
    for count, user_id in chosen.items():
        membership.objects.bulk_create(membership(user_id=user_id, group_id=g.id) for g in made[:count])
        Account.objects.create(user_id=user_id, role="moderator")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres", action="store_true", help="a fresh database on PostgreSQL, dropped after"
    )
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        name = f"mchat_bench_access_{secrets.token_hex(4)}"
        if args.postgres:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        else:
            database_url = f"sqlite:///{tmp}/bench.sqlite3"
        os.environ.update(
            {"DEBUG": "1", "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "webapp.settings"}
        )
        try:
            rows = run(args.repeats)
        finally:
            if args.postgres:
                from django.db import connections

                connections.close_all()
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    database = "PostgreSQL 127.0.0.1" if args.postgres else "SQLite file"
    print(f"{len(os.sched_getaffinity(0))} cores ({cpu_model()}); {database}; load {os.getloadavg()[0]:.2f}")
    headers = ["call", "groups with limits", "p50 µs", "p99 µs", "mean µs"]
    print(format_table(headers, rows, markdown=args.markdown))


def run(repeats: int) -> list[list[str]]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from webapp.accounts import access

    chosen = populate(people=2000, groups=50)
    rows = []
    for count, user_id in chosen.items():
        user = get_user_model().objects.get(pk=user_id)

        def role_afresh(user=user) -> object:
            access.forget_role(user)
            return access.role_of(user)

        for label, call in (
            ("limits_for_id", lambda user_id=user_id: access.limits_for_id(user_id)),
            ("active_limits_for_id", lambda user_id=user_id: access.active_limits_for_id(user_id)),
            ("role_of (uncached)", role_afresh),
        ):
            samples = timed(call, repeats)
            rows.append(
                [
                    label,
                    str(count),
                    fmt(percentile(samples, 50)),
                    fmt(percentile(samples, 99)),
                    fmt(statistics.fmean(samples)),
                ]
            )
    return sorted(rows, key=lambda row: (row[0], int(row[1])))


if __name__ == "__main__":
    main()
