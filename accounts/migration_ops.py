"""Migration operations that run on one database vendor only (their state applies everywhere)."""

from __future__ import annotations

from django.db import migrations


class PostgresOnlyAddIndex(migrations.AddIndex):
    """AddIndex for PostgreSQL-only index types (GIN trigram); a no-op on SQLite."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class TenantVendorSQL(migrations.RunSQL):
    """Raw SQL for tenant databases of one vendor (for example ``CREATE EXTENSION pg_trgm``)."""

    def __init__(self, sql, reverse_sql=None, *, vendor: str, **kwargs):
        self.vendor = vendor
        kwargs.setdefault("hints", {})["tenant"] = True
        super().__init__(sql, reverse_sql, **kwargs)

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        kwargs["vendor"] = self.vendor
        kwargs.get("hints", {}).pop("tenant", None)
        if not kwargs.get("hints"):
            kwargs.pop("hints", None)
        return name, args, kwargs

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_backwards(app_label, schema_editor, from_state, to_state)
