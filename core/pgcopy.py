"""``COPY ... FROM STDIN`` on PostgreSQL: several times faster than INSERT for the thousands of
rows of a batch (audit entries, their events, the events' deliveries)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

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


def next_ids(table: str, count: int, using: str = DEFAULT_DB_ALIAS) -> list[int]:
    """``count`` values of the table's id sequence, in order (ids for rows about to be COPied)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                       [table, count])
        return [row[0] for row in cursor.fetchall()]
