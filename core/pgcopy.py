"""``COPY ... FROM STDIN`` on PostgreSQL: several times faster than INSERT for the thousands of
rows of a batch (audit entries, their events, the events' deliveries)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, ForeignKey, Lookup

COPY_MIN = 200  # below this, a bulk INSERT is as fast


def copies(count: int, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether ``count`` rows are worth a COPY on this connection."""
    return count >= COPY_MIN and connections[using].vendor == "postgresql"


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], using: str = DEFAULT_DB_ALIAS) -> None:
    """COPY the rows (values in ``columns`` order; JSON columns as ``psycopg`` ``Jsonb`` or as
    JSON text) into ``table`` in the current transaction."""
    with connections[using].cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # noqa: S608
            for row in rows:
                copy.write_row(row)


def json_texts() -> Callable[[Any], str | None]:
    """A JSON column's value as COPY takes it: its ``json.dumps`` text (what psycopg's ``Jsonb``
    and Django's ``JSONField`` send), ``None`` for NULL; a value shared by many rows (the same
    object) is dumped once."""
    texts: dict[int, str] = {}
    keep: list[Any] = []  # the ids stay those of these objects while the memo lives

    def text(value: Any) -> str | None:
        if value is None:
            return None
        found = texts.get(id(value))
        if found is None:
            found = texts[id(value)] = json.dumps(value)
            keep.append(value)
        return found

    return text


def next_ids(table: str, count: int, using: str = DEFAULT_DB_ALIAS) -> list[int]:
    """``count`` values of the table's id sequence, in order (ids for rows about to be COPied)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                       [table, count])
        return [row[0] for row in cursor.fetchall()]


# --- Many ids in one statement ----------------------------------------------------------------


class AnyOf(Lookup):
    """``field__any=[...]``: ``field = ANY(%s::type[])`` on PostgreSQL, the whole list bound as
    ONE array parameter (an ``IN`` of thousands of placeholders costs more to build and parse
    than to run); ``IN (...)`` elsewhere (SQLite: keep lists under 900, see ``id_chunks``)."""

    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self) -> list[Any]:
        field = self.lhs.output_field
        return [field.get_prep_value(v) for v in self.rhs]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(v, connection, prepared=True) for v in self.rhs]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", [*lhs_params, values]
        if not values:
            return "1 = 0", list(lhs_params)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]


Field.register_lookup(AnyOf)
ForeignKey.register_lookup(AnyOf)  # related fields keep lookups of their own


def id_chunks(ids: Sequence[Any], using: str) -> Iterator[Sequence[Any]]:
    """The ids as the statements of a batch take them with ``__any``: all at once on
    PostgreSQL, 900 at a time elsewhere (SQLite's historical 999-parameter limit)."""
    size = len(ids) if connections[using].vendor == "postgresql" else 900
    for start in range(0, len(ids), max(size, 1)):
        yield ids[start:start + size]
