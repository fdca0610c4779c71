"""What webapp/settings.py makes of a SQLite DATABASE_URL: WAL, IMMEDIATE transactions, a busy timeout.

The settings module is run afresh with a SQLite file as DATABASE_URL, and a
connection is opened from what it produced, whatever database the test run
itself uses. The 64 senders of tests/integration/test_sqlite_concurrency.py
are what these settings are for.
"""

from __future__ import annotations

import runpy
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import ConnectionHandler

SETTINGS = Path(__file__).resolve().parents[2] / "webapp" / "settings.py"
ALIAS = "sqlite_settings_check"


def database_settings(monkeypatch: pytest.MonkeyPatch, url: str) -> dict:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", "only-for-this-test")
    return runpy.run_path(str(SETTINGS))["DATABASES"]["default"]


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3"


@pytest.fixture
def sqlite_connection(
    monkeypatch: pytest.MonkeyPatch, database_file: Path, django_db_blocker
) -> Iterator[BaseDatabaseWrapper]:
    """A connection made from the settings, registered under its own alias so that `atomic` can use it."""
    handler = ConnectionHandler({"default": database_settings(monkeypatch, f"sqlite:///{database_file}")})
    connection = handler["default"]
    connections[ALIAS] = connection
    with django_db_blocker.unblock():
        try:
            yield connection
        finally:
            connection.close()
            del connections[ALIAS]


def pragma(connection: BaseDatabaseWrapper, name: str) -> object:
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


def test_a_sqlite_connection_journals_to_a_wal_and_waits_for_the_lock(
    sqlite_connection: BaseDatabaseWrapper,
) -> None:
    assert pragma(sqlite_connection, "journal_mode") == "wal"
    assert pragma(sqlite_connection, "synchronous") == 1  # NORMAL: safe in WAL mode, fewer fsyncs
    assert pragma(sqlite_connection, "busy_timeout") >= 10_000


def test_a_transaction_takes_the_write_lock_when_it_begins(
    sqlite_connection: BaseDatabaseWrapper, database_file: Path
) -> None:
    sqlite_connection.ensure_connection()
    other = sqlite3.connect(database_file, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # nobody holds the lock yet
        other.execute("ROLLBACK")
        # Before any statement of the transaction: a deferred BEGIN would hold nothing yet.
        with (
            transaction.atomic(using=ALIAS),
            pytest.raises(sqlite3.OperationalError, match="database is locked"),
        ):
            other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()


def test_postgresql_gets_none_of_the_sqlite_options(monkeypatch: pytest.MonkeyPatch) -> None:
    database = database_settings(monkeypatch, "postgresql://chat@db.example/chat")
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert not {"transaction_mode", "init_command", "timeout"} & set(database.get("OPTIONS", {}))
