"""PreparedQuery and Param (webapp/prepared.py): an ORM query compiled once per process, run with new values.

Every result is compared with the same queryset run by the ORM, on whatever
database the run uses (SQLite by default, PostgreSQL with DATABASE_URL).
"""

from __future__ import annotations

import datetime as dt
import gc
import threading
import uuid
import weakref
from collections.abc import Hashable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Exists, IntegerField, OuterRef, QuerySet
from django.utils import timezone

from webapp import prepared
from webapp.chat.models import Conversation, Message
from webapp.prepared import Param, PreparedQuery

T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
COLUMNS = ("id", "conversation_id", "role", "created_at", "conversation__pinned", "answered")


def orm_rows(conversation_id: Any, owner_id: Any, since: Any) -> QuerySet[Any]:
    """The query under test: plain values give the ORM's query, Params the one to prepare."""
    return (
        Message.objects.filter(
            conversation_id=conversation_id, conversation__owner_id=owner_id, created_at__gte=since
        )
        .annotate(answered=Exists(Message.objects.filter(parent_id=OuterRef("pk"))))
        .order_by("created_at", "id")
        .values_list(*COLUMNS)
    )


def build(variant: Hashable) -> QuerySet[Any]:
    rows = orm_rows(
        Param("conversation_id", Conversation._meta.pk),
        Param("owner_id", IntegerField()),
        Param("since", Message._meta.get_field("created_at")),
    )
    return rows.reverse() if variant == "newest first" else rows


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, Hashable]]:
    """Each `PreparedQuery._compile` call, as (thread id, variant): the real one still runs."""
    calls: list[tuple[int, Hashable]] = []
    original = PreparedQuery._compile

    def spy(self: PreparedQuery, variant: Hashable, conn: Any) -> Any:
        calls.append((threading.get_ident(), variant))
        return original(self, variant, conn)

    monkeypatch.setattr(PreparedQuery, "_compile", spy)
    return calls


def make_rows() -> list[tuple[Conversation, list[Message]]]:
    """Two people, three conversations (one pinned), each a path of four messages a minute apart."""
    made = []
    for number, (name, pinned) in enumerate([("ann", False), ("ann", True), ("ben", False)]):
        owner, _ = get_user_model().objects.get_or_create(username=f"prepared-{name}")
        conversation = Conversation.objects.create(owner=owner, pinned=pinned)
        messages: list[Message] = []
        for i in range(4):
            message = Message(
                conversation=conversation,
                parent_id=messages[-1].id if messages else None,
                role="user" if i % 2 == 0 else "assistant",
                content=f"m{i}",
            )
            message.explicit_parent = True
            message.save(force_insert=True)
            # Interleaved over the conversations, so a time alone never picks one conversation.
            Message.objects.filter(pk=message.pk).update(created_at=T0 + dt.timedelta(minutes=3 * i + number))
            messages.append(message)
        made.append((conversation, messages))
    return made


def cases(made: list[tuple[Conversation, list[Message]]]) -> list[tuple[uuid.UUID, int, dt.datetime]]:
    """Values for each Param: right and wrong owners, times before, inside and after each path."""
    owners = sorted({conversation.owner_id for conversation, _ in made})
    times = [
        T0 - dt.timedelta(days=1),
        T0 + dt.timedelta(minutes=4),
        T0 + dt.timedelta(minutes=7),
        T0 + dt.timedelta(days=1),
    ]
    ids = [conversation.id for conversation, _ in made] + [uuid.uuid4()]
    return [(cid, owner, since) for cid in ids for owner in owners for since in times]


@pytest.mark.django_db
def test_uuid_int_and_datetime_params_give_the_orms_rows_for_every_value(compiles: list) -> None:
    """One compiled SQL, run with 30-odd sets of values: each time the ORM's own rows."""
    made = make_rows()
    query = PreparedQuery(build)
    non_empty = 0
    for conversation_id, owner_id, since in cases(made):
        expected = list(orm_rows(conversation_id, owner_id, since))
        assert query.rows(None, conversation_id=conversation_id, owner_id=owner_id, since=since) == expected
        non_empty += bool(expected)
    assert non_empty >= 6  # the values really select rows, not only nothing
    assert [variant for _, variant in compiles] == [None]


@pytest.mark.django_db
def test_values_given_as_text_are_prepared_by_the_params_field() -> None:
    """A UUID given as its text and an owner id as a string still match: the field prepares them."""
    (conversation, messages), *_ = make_rows()
    rows = PreparedQuery(build).rows(
        None, conversation_id=str(conversation.id), owner_id=str(conversation.owner_id), since=T0
    )
    assert [row[0] for row in rows] == [message.id for message in messages]


@pytest.mark.django_db
def test_compiled_once_per_variant(compiles: list) -> None:
    """Many runs compile once; a second variant compiles once more, and each variant keeps its SQL."""
    made = make_rows()
    conversation, messages = made[0]
    query = PreparedQuery(build)
    values = {"conversation_id": conversation.id, "owner_id": conversation.owner_id, "since": T0}
    for _ in range(20):
        assert [row[0] for row in query.rows(None, **values)] == [m.id for m in messages]
    assert len(compiles) == 1
    for _ in range(5):
        assert [row[0] for row in query.rows("newest first", **values)] == [m.id for m in reversed(messages)]
        assert [row[0] for row in query.rows(None, **values)] == [m.id for m in messages]
    assert [variant for _, variant in compiles] == [None, "newest first"]
    # Another PreparedQuery is another query: it compiles its own.
    PreparedQuery(build).rows(None, **values)
    assert len(compiles) == 3


def run_in_thread(target: Any) -> Any:
    """`target()` in a new thread, which closes its own connection at the end; its result or its error."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["result"] = target()
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.mark.django_db(transaction=True)
def test_another_thread_reuses_the_compiled_query_on_its_own_connection(compiles: list) -> None:
    made = make_rows()
    query = PreparedQuery(build)
    all_cases = cases(made)
    expected = [list(orm_rows(*case)) for case in all_cases]

    def run_all() -> tuple[int, list[list[tuple]]]:
        got = [query.rows(None, conversation_id=c, owner_id=o, since=s) for c, o, s in all_cases]
        return id(connections[DEFAULT_DB_ALIAS]), got

    assert [query.rows(None, conversation_id=c, owner_id=o, since=s) for c, o, s in all_cases] == expected
    thread_connection, got = run_in_thread(run_all)
    assert got == expected
    assert thread_connection != id(connections[DEFAULT_DB_ALIAS])
    assert compiles == [(threading.get_ident(), None)]  # the thread compiled nothing


@pytest.mark.django_db(transaction=True)
def test_two_threads_at_once_read_right_and_compile_at_most_once_each(compiles: list) -> None:
    made = make_rows()
    query = PreparedQuery(build)
    all_cases = cases(made)
    expected = [list(orm_rows(*case)) for case in all_cases]
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def worker(slot: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[slot] = [
                query.rows(None, conversation_id=c, owner_id=o, since=s)
                for _ in range(3)
                for c, o, s in all_cases
            ]
        except BaseException as error:
            results[slot] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [expected * 3, expected * 3]
    # Both may compile before either stores it (the same SQL): never more.
    assert 1 <= len(compiles) <= 2 and len({thread for thread, _ in compiles}) == len(compiles)


@pytest.mark.django_db
def test_the_orms_converters_are_applied_to_the_rows() -> None:
    """Booleans (a column, an Exists) come back as bool, ids as UUID, times as aware datetimes.

    SQLite's cursor gives 0/1 and hex text: the rows must not.
    """
    made = make_rows()
    query = PreparedQuery(build)
    rows = [
        row
        for conversation, _ in made
        for row in query.rows(None, conversation_id=conversation.id, owner_id=conversation.owner_id, since=T0)
    ]
    assert len(rows) == 12
    for message_id, conversation_id, role, created_at, pinned, answered in rows:
        assert type(message_id) is uuid.UUID and type(conversation_id) is uuid.UUID
        assert type(pinned) is bool and type(answered) is bool
        assert isinstance(created_at, dt.datetime) and created_at.utcoffset() == dt.timedelta(0)
        assert role in {"user", "assistant"}
    # Both values of each boolean are there, so a 0/1 would have shown.
    assert {row[4] for row in rows} == {True, False} and {row[5] for row in rows} == {True, False}
    assert [row[3] for row in rows[:4]] == [T0 + dt.timedelta(minutes=3 * i) for i in range(4)]


@pytest.mark.django_db
def test_a_missing_value_raises_key_error_naming_the_param() -> None:
    (conversation, _), *_ = make_rows()
    query = PreparedQuery(build)
    with pytest.raises(KeyError, match="since"):
        query.rows(None, conversation_id=conversation.id, owner_id=conversation.owner_id)
    with pytest.raises(KeyError, match="owner_id"):
        query.rows(None, conversation_id=conversation.id, since=T0)
    # The failed runs left the query usable.
    assert (
        len(query.rows(None, conversation_id=conversation.id, owner_id=conversation.owner_id, since=T0)) == 4
    )


@pytest.mark.django_db(transaction=True)
def test_a_finished_threads_connection_is_forgotten() -> None:
    """Nothing keeps a finished thread's connection alive."""
    (conversation, _), *_ = make_rows()
    query = PreparedQuery(build)
    values = {"conversation_id": conversation.id, "owner_id": conversation.owner_id, "since": T0}
    query.rows(None, **values)

    def run() -> weakref.ref:
        query.rows(None, **values)
        return weakref.ref(connections[DEFAULT_DB_ALIAS])

    thread_connection = run_in_thread(run)
    gc.collect()
    assert thread_connection() is None


def stored(message_id: uuid.UUID) -> dict[str, Any]:
    return Message.objects.filter(id=message_id).values().get()


@pytest.mark.django_db
def test_insert_writes_the_row_model_save_writes() -> None:
    (conversation, path), *_ = make_rows()
    fields = {
        "role": Message.Role.ASSISTANT,
        "status": Message.Status.QUEUED,
        "params": {"max_tokens": 7, "stop": ["é"]},
    }
    ours = Message(conversation=conversation, parent_id=path[-1].id, content="né\n", **fields)
    django = Message(conversation=conversation, parent_id=path[-1].id, content="né\n", **fields)
    ours.explicit_parent = django.explicit_parent = True
    before = timezone.now()
    prepared.insert(ours)
    django.save(force_insert=True)
    assert not ours._state.adding and ours._state.db == "default"
    mine, theirs = stored(ours.id), stored(django.id)
    assert before <= mine["created_at"] <= theirs["created_at"] and mine["created_at"] == ours.created_at
    different = {"id", "created_at", "updated_at"}
    assert {k: v for k, v in mine.items() if k not in different} == {
        k: v for k, v in theirs.items() if k not in different
    }
    assert mine["params"] == {"max_tokens": 7, "stop": ["é"]}


@pytest.mark.django_db
def test_update_writes_only_the_fields_named_and_stamps_auto_now() -> None:
    (conversation, path), *_ = make_rows()
    before = Conversation.objects.values().get(pk=conversation.pk)
    conversation.title, conversation.current_leaf_id = "Renamed", path[1].id
    conversation.system_prompt = "not saved: not named"
    prepared.update(conversation, ["title", "current_leaf", "updated_at"])
    after = Conversation.objects.values().get(pk=conversation.pk)
    assert after["title"] == "Renamed" and after["current_leaf_id"] == path[1].id
    assert after["updated_at"] > before["updated_at"] and after["updated_at"] == conversation.updated_at
    assert after["system_prompt"] == before["system_prompt"]
    assert {k: v for k, v in after.items() if k not in {"title", "current_leaf_id", "updated_at"}} == {
        k: v for k, v in before.items() if k not in {"title", "current_leaf_id", "updated_at"}
    }


@pytest.mark.django_db
def test_a_guarded_update_writes_while_the_guard_holds_and_says_how_many_rows() -> None:
    (conversation, path), *_ = make_rows()
    reply = path[1]
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.QUEUED)
    others = Message.objects.exclude(pk=reply.pk).values().order_by("id")
    before = list(others)
    live = {"status": Message.LIVE_STATUSES}

    streaming = Message(id=reply.id, status=Message.Status.STREAMING, queue_ms=12.5)
    assert prepared.update(streaming, ["status", "queue_ms", "updated_at"], where=live) == 1
    row = stored(reply.id)
    assert (row["status"], row["queue_ms"], row["updated_at"]) == ("streaming", 12.5, streaming.updated_at)

    ended = Message(id=reply.id, status=Message.Status.COMPLETE, content="done")
    assert prepared.update(ended, ["status", "content"], where=live) == 1
    # The guard no longer holds: a second ending (a redelivered job, the sweeper) writes nothing.
    late = Message(id=reply.id, status=Message.Status.FAILED, content="late")
    assert prepared.update(late, ["status", "content"], where=live) == 0
    assert prepared.update(late, ["status"], where={"status": [], "role": ["assistant"]}) == 0
    assert (stored(reply.id)["status"], stored(reply.id)["content"]) == ("complete", "done")
    # Nor does a row that is not there, and nothing else was touched.
    assert prepared.update(Message(id=uuid.uuid4(), status="failed"), ["status"], where=live) == 0
    assert list(others) == before


@pytest.mark.django_db
def test_the_guards_shape_is_part_of_the_statement_it_reuses() -> None:
    (conversation, path), *_ = make_rows()
    one = Message(id=path[1].id, content="one")
    assert prepared.update(one, ["content"], where={"role": ["user"]}) == 0  # path[1] is the assistant's
    assert prepared.update(one, ["content"], where={"role": ["user", "assistant"]}) == 1
    assert prepared.update(one, ["content"]) == 1  # unguarded: the plain save(update_fields=...)
    assert stored(path[1].id)["content"] == "one"


@pytest.mark.django_db
def test_a_locking_query_gives_the_orms_rows_and_locks_where_the_database_can() -> None:
    made = make_rows()
    query = PreparedQuery(
        lambda _: (
            Conversation.objects.filter(id=Param("conversation_id", Conversation._meta.pk))
            .order_by()
            .values_list("id", "title", "owner__username")
        ),
        for_update_of=(Conversation, "auth.User"),
    )
    with transaction.atomic():
        for conversation, _ in made:
            expected = Conversation.objects.filter(id=conversation.id).values_list(
                "id", "title", "owner__username"
            )
            assert query.rows(conversation_id=conversation.id) == list(expected)
        assert query.rows(conversation_id=uuid.uuid4()) == []
    sql = query._compiled[connection.vendor, None].sql
    if connection.features.has_select_for_update_of:  # PostgreSQL: both rows, and only those tables'
        assert sql.endswith('FOR UPDATE OF "chat_conversation", "auth_user"')
    else:  # SQLite locks the whole database for a writing transaction instead
        assert "FOR UPDATE" not in sql


def server_prepared() -> list[str]:
    """The statements this connection has prepared on the server (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="server-side prepared statements are PostgreSQL's"
)


@needs_postgresql
@pytest.mark.django_db
def test_on_postgresql_the_sql_is_prepared_on_the_server_once_and_gives_the_orms_rows() -> None:
    made = make_rows()
    query = PreparedQuery(build)
    before = len(server_prepared())
    for cid, owner, since in cases(made):
        assert query.rows(conversation_id=cid, owner_id=owner, since=since) == list(
            orm_rows(cid, owner, since)
        )
    (conversation, path), *_ = made
    reply = Message(conversation=conversation, parent_id=path[-1].id, role="assistant", status="queued")
    reply.explicit_parent = True
    prepared.insert(reply)
    reply.status = Message.Status.STREAMING
    assert prepared.update(reply, ["status"], where={"status": ["queued"]}) == 1
    assert prepared.update(reply, ["status"], where={"status": ["queued"]}) == 0
    statements = server_prepared()[before:]
    # One each, however many times it ran: the query (per parameter types), the insert, the update.
    assert len(statements) == len(set(statements)) and len(statements) >= 3
    assert any(s.startswith("INSERT INTO") for s in statements)
    assert any(s.startswith("UPDATE") for s in statements)


@needs_postgresql
@pytest.mark.django_db
def test_with_prepared_statements_off_nothing_is_prepared(settings) -> None:
    settings.DATABASE_PREPARED_STATEMENTS = False
    made = make_rows()
    before = server_prepared()
    cid, owner, since = cases(made)[0]
    assert PreparedQuery(build).rows(conversation_id=cid, owner_id=owner, since=since) == list(
        orm_rows(cid, owner, since)
    )
    assert server_prepared() == before


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_prepared_statements_errors_are_djangos_and_a_broken_transaction_refuses_the_next() -> None:
    from django.db import IntegrityError
    from django.db.transaction import TransactionManagementError

    (conversation, path), *_ = make_rows()
    twin = Message(id=path[0].id, conversation=conversation, role="user", content="again")
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False):  # django.db's, not psycopg's
            prepared.insert(twin)
        with pytest.raises(TransactionManagementError):  # as Django's cursor refuses it
            prepared.update(path[1], ["content"])
    assert Message.objects.get(pk=path[0].pk).content == "m0"
