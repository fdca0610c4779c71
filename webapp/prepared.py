"""ORM queries compiled once and run many times, and rows written with SQL written once:
for the send path's first-token time.

Django builds and compiles a query anew at each call: measured on the send
path, 0.5 to 5 ms of CPU a query, where PostgreSQL ran the same SQL in 0.2.
A Daphne stores a burst of sends one GIL at a time, so that cost is what the
last send of a burst waits for. A `PreparedQuery` keeps the ORM as the one
definition of each rule (what a sanction in force is, which replies are
live) and compiles it once per process, with a `Param` where each run's
value goes. On PostgreSQL the SQL then runs as a server-side prepared
statement (`DATABASE_PREPARED_STATEMENTS`), so that PostgreSQL, too, parses
and plans it once a connection.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model, QuerySet
from django.db.models.expressions import Expression


@dataclass(frozen=True)
class _Slot:
    name: str
    field: Field


class Param(Expression):
    """A named placeholder in a query: `filter(user_id=Param("user_id", IntegerField()))`.

    Its value is given at each run and prepared for the database as its
    `output_field` prepares it (a UUID is hex text in SQLite, a UUID in PostgreSQL).
    """

    def __init__(self, name: str, output_field: Field) -> None:
        super().__init__(output_field=output_field)
        self.name = name

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[object]]:
        return "%s", [_Slot(self.name, self.output_field)]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[object, ...]
    # The ORM's own conversion of each column (SQLite's 0/1 to bool, hex text to UUID):
    # (position, converter functions, the column's expression).
    converters: tuple[tuple[int, tuple[Callable[..., object], ...], object], ...]

    def convert(self, rows: list[tuple[object, ...]], connection: Any) -> list[tuple[object, ...]]:
        if not self.converters:
            return rows
        converted = []
        for row in rows:
            values = list(row)
            for position, functions, expression in self.converters:
                for function in functions:
                    values[position] = function(values[position], expression, connection)
            converted.append(tuple(values))
        return converted


class PreparedQuery:
    """`build(variant)` compiled once per process, database and variant; `rows(variant, **values)` runs it.

    `build` returns a `values_list` queryset; `variant` is whatever changes
    its SQL other than `Param` values (a setting that adds a column, a value
    known to be None), and must be hashable. The SQL is the same for every
    connection to a database, so the threads share it: a worker's 64 job
    threads compiling their own cost more than the queries in a burst.
    """

    def __init__(
        self, build: Callable[[Hashable], QuerySet[Any]], *, for_update_of: Sequence[type[Model] | str] = ()
    ) -> None:
        """`for_update_of`: the models (or "app_label.Model" names) whose rows the query locks
        (`SELECT ... FOR UPDATE OF`), its own and joined ones', where the database can; the
        caller holds a transaction."""
        self._build = build
        self._for_update_of = tuple(for_update_of)
        self._compiled: dict[tuple[str, Hashable], _Compiled] = {}

    def rows(self, variant: Hashable = None, **values: object) -> list[tuple[object, ...]]:
        connection = connections[DEFAULT_DB_ALIAS]  # this thread's
        key = (connection.vendor, variant)
        compiled = self._compiled.get(key)
        if compiled is None:  # two threads may both compile it first: the same SQL either way
            compiled = self._compiled[key] = self._compile(variant, connection)
        params = [
            p.field.get_db_prep_value(values[p.name], connection) if isinstance(p, _Slot) else p
            for p in compiled.params
        ]
        rows, _ = _execute(connection, compiled.sql, params, fetch=True)
        return compiled.convert(rows, connection)

    def _compile(self, variant: Hashable, connection: Any) -> _Compiled:
        compiler = self._build(variant).query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        if self._for_update_of:
            sql = f"{sql}{_for_update(self._for_update_of, connection)}"
        converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])
        return _Compiled(
            sql,
            tuple(params),
            tuple(
                (position, tuple(functions), expression)
                for position, (functions, expression) in converters.items()
            ),
        )


def _for_update(models: Sequence[type[Model] | str], connection: Any) -> str:
    """The locking clause for these models' tables (ORM joins name a table by itself once)."""
    if connection.features.has_select_for_update_of:
        tables = [
            connection.ops.quote_name((apps.get_model(m) if isinstance(m, str) else m)._meta.db_table)
            for m in models
        ]
        return f" {connection.ops.for_update_sql(of=tables)}"
    if connection.features.has_select_for_update:
        return f" {connection.ops.for_update_sql()}"
    return ""  # SQLite: a write transaction locks the whole database (see settings: IMMEDIATE)


def insert(instance: Model) -> None:
    """`instance.save(force_insert=True)` with SQL written once per model and database.

    What `Model.save` does for a new row, less its cost (0.5 ms a row on the
    send path): each field's `pre_save` (`auto_now_add` times) and
    `get_db_prep_save`. No signals are sent: keep it to models without receivers.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    fields = _insert_fields(type(instance))
    sql = _INSERT_SQL.get((type(instance), connection.vendor))
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        sql = _INSERT_SQL[type(instance), connection.vendor] = (
            f"INSERT INTO {quote(instance._meta.db_table)} ({columns}) VALUES ({placeholders})"
        )
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection=connection) for field in fields
    ]
    _execute(connection, sql, values)
    instance._state.adding = False
    instance._state.db = DEFAULT_DB_ALIAS


def update(
    instance: Model, fields: Sequence[str], *, where: Mapping[str, Sequence[object]] | None = None
) -> int:
    """`instance.save(update_fields=fields)` with SQL written once per model, fields, guard and
    database; how many rows it wrote (0 or 1).

    `where` guards the write, a field's name to the values it must hold
    (`{"status": ["queued"]}`): a conditional UPDATE is atomic by itself, so
    two workers racing for one row cannot both write it.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    meta = instance._meta
    chosen = tuple(meta.get_field(name) for name in fields)
    guards = tuple((meta.get_field(name), tuple(values)) for name, values in (where or {}).items())
    if any(not values for _, values in guards):
        return 0  # no value passes an empty guard (and `IN ()` is not SQL everywhere)
    shape = (type(instance), tuple(fields), tuple((field.name, len(values)) for field, values in guards))
    sql = _UPDATE_SQL.get((shape, connection.vendor))
    if sql is None:
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in chosen)
        conditions = "".join(
            f" AND {quote(field.column)} IN ({', '.join(['%s'] * len(values))})" for field, values in guards
        )
        sql = _UPDATE_SQL[shape, connection.vendor] = (
            f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s{conditions}"
        )
    values = [
        field.get_db_prep_save(field.pre_save(instance, False), connection=connection) for field in chosen
    ]
    guarded = [field.get_db_prep_value(value, connection) for field, values in guards for value in values]
    _, written = _execute(
        connection, sql, [*values, meta.pk.get_db_prep_value(instance.pk, connection), *guarded]
    )
    return written


def _execute(
    connection: Any, sql: str, params: Sequence[object], *, fetch: bool = False
) -> tuple[list[tuple[object, ...]], int]:
    """Run SQL written once: its rows (with `fetch`) and how many rows it wrote.

    On PostgreSQL, as a prepared statement: psycopg parses it on the server
    the first time a connection runs it and only binds values after, where
    Django's cursor sends each call's SQL with the values written in, parsed
    and planned anew (PostgreSQL's CPU for the send's checks: 440 -> 130 us).
    Django's cursor still runs it where queries are being logged or counted.
    """
    if (
        connection.vendor != "postgresql"
        or not settings.DATABASE_PREPARED_STATEMENTS
        or connection.queries_logged
        or connection.execute_wrappers
    ):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return (cursor.fetchall() if fetch else []), cursor.rowcount
    import psycopg  # only on PostgreSQL

    # What Django's cursor does around a statement: connect (or take a pooled
    # connection), refuse to run in a transaction already broken, and raise
    # django.db's errors, not psycopg's.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return (cursor.fetchall() if fetch else []), cursor.rowcount


def _insert_fields(model: type[Model]) -> list[Field]:
    # Django's own choice for an INSERT (SQLInsertCompiler): the local concrete fields.
    return [field for field in model._meta.local_concrete_fields if not getattr(field, "generated", False)]


_INSERT_SQL: dict[tuple[type[Model], str], str] = {}
_UPDATE_SQL: dict[tuple[tuple[object, ...], str], str] = {}
