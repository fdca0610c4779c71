"""ORM queries compiled once and run many times, for the send path's first-token time.

Django builds and compiles a query anew at each call: measured on the send
path, 0.5 to 5 ms of CPU a query, where PostgreSQL ran the same SQL in 0.2.
A Daphne stores a burst of sends one GIL at a time, so that cost is what the
last send of a burst waits for. A `PreparedQuery` keeps the ORM as the one
definition of each rule (what a sanction in force is, which replies are
live) and compiles it once per database connection, with a `Param` where
each run's value goes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, QuerySet
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
    convert: Callable[[list[tuple[object, ...]]], list[tuple[object, ...]]]


class PreparedQuery:
    """`build(variant)` compiled once per connection and variant; `rows(variant, **values)` runs it.

    `build` returns a `values_list` queryset; `variant` is whatever changes
    its SQL other than `Param` values (a setting that adds a column, a value
    known to be None), and must be hashable.
    """

    def __init__(self, build: Callable[[Hashable], QuerySet[Any]]) -> None:
        self._build = build

    def rows(self, variant: Hashable = None, **values: object) -> list[tuple[object, ...]]:
        connection = connections[DEFAULT_DB_ALIAS]  # this thread's
        # Kept on the connection object: each thread has its own, and it goes with the
        # thread (kept here, a compiled query would keep its connection alive: the
        # compiler refers to it).
        compiled_here = connection.__dict__.setdefault("prepared_queries", {})
        compiled = compiled_here.get((self, variant))
        if compiled is None:
            compiled = compiled_here[self, variant] = self._compile(variant, connection)
        params = [
            p.field.get_db_prep_value(values[p.name], connection) if isinstance(p, _Slot) else p
            for p in compiled.params
        ]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            return compiled.convert(cursor.fetchall())

    def _compile(self, variant: Hashable, connection: Any) -> _Compiled:
        compiler = self._build(variant).query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        # The ORM's own conversions of each column (SQLite's 0/1 to bool, hex to UUID).
        converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])

        def convert(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
            return [tuple(row) for row in compiler.apply_converters(rows, converters)] if converters else rows

        return _Compiled(sql, tuple(params), convert)
