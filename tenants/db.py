"""The tenancy plane's database layer: aliases, placement, creation, migration, drop.

Every tenant database is reached through an alias registered at run time in
``django.db.connections`` by ``ensure_alias()``. The entry is a deep copy of ``default`` (a
hand-written dict would miss keys Django fills at start-up) with the server and name changed.
"""

from __future__ import annotations

import copy
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import dj_database_url
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from core.errors import Conflict
from tenants.models import Tenant

if TYPE_CHECKING:
    import psycopg

TENANT_APPS = ("accounts",)
ALIAS_PREFIX = "tenant:"
_lock = threading.RLock()


class TenantDatabaseError(Conflict):
    """A tenant database is closed, or could not be created, migrated or dropped; the message
    says why. One of the family: a view that lets it through answers 409, never 500."""

    default_code = "tenant_database"


def is_tenant_alias(alias: str | None) -> bool:
    return bool(alias) and str(alias).startswith(ALIAS_PREFIX)


def control_vendor() -> str:
    return connections[DEFAULT_DB_ALIAS].vendor


def server_settings(server: str) -> dict[str, Any]:
    """The connection settings of a tenant database server, by key."""
    base = copy.deepcopy(connections.settings[DEFAULT_DB_ALIAS])
    servers = getattr(settings, "TENANT_DATABASE_SERVERS", {}) or {}
    if server in servers:
        parsed = dj_database_url.parse(servers[server])
        if parsed["ENGINE"] != base["ENGINE"]:
            raise ImproperlyConfigured(
                f"Tenant server {server!r} uses {parsed['ENGINE']}; the control database uses "
                f"{base['ENGINE']}. All servers must use the same engine."
            )
        for key in ("HOST", "PORT", "USER", "PASSWORD", "NAME"):
            base[key] = parsed.get(key, base.get(key))
        base["OPTIONS"] = {**base.get("OPTIONS", {}), **parsed.get("OPTIONS", {})}
    elif server != "default":
        raise ImproperlyConfigured(f"Unknown tenant database server {server!r}.")
    # Tenants are many: keep no pooled connections open between requests.
    base["CONN_MAX_AGE"] = 0
    if base["ENGINE"] == "django.db.backends.postgresql":
        # One unreachable tenant server must not hang a page that lists many tenants.
        base["OPTIONS"] = {"connect_timeout": 5, **base.get("OPTIONS", {})}
    base["TEST"] = {**base.get("TEST", {}), "MIRROR": None}
    return base


def database_settings(tenant: Tenant) -> dict[str, Any]:
    cfg = server_settings(tenant.db_server)
    if cfg["ENGINE"] == "django.db.backends.sqlite3":
        # mode=rw: connecting never creates the file; only create_database() does. A page that
        # looks at a tenant still provisioning gets an error, not an empty database.
        cfg["NAME"] = f"file:{quote(str(sqlite_path(tenant.db_name)))}?mode=rw"
    else:
        cfg["NAME"] = tenant.db_name
    return cfg


def sqlite_path(db_name: str) -> Path:
    return Path(settings.TENANT_SQLITE_DIR) / f"{db_name}.sqlite3"


def _alias_name(tenant: Tenant) -> str:
    """The connection alias of a tenant's database. Private: everything outside this module
    gets it from ``using()``, which registers it first (a fresh worker has no alias yet)."""
    return f"{ALIAS_PREFIX}{tenant.slug}"


def ensure_alias(tenant: Tenant) -> str:
    """Register (once) and return the connection alias of the tenant's database."""
    alias = _alias_name(tenant)
    if alias in connections.settings:
        return alias
    with _lock:
        if alias not in connections.settings:
            connections.settings[alias] = database_settings(tenant)
    return alias


def drop_alias(tenant: Tenant) -> None:
    alias = _alias_name(tenant)
    with _lock:
        if alias in connections.settings:
            try:
                connections[alias].close()
            except Exception:  # noqa: BLE001, S110 - closing a dead connection must not block
                pass
            del connections.settings[alias]
            # The per-thread connection object, if any, is gone with the settings entry.
            try:
                del connections[alias]
            except AttributeError:
                pass


def using(tenant: Tenant) -> str:
    """The alias to pass to ``.using()`` for this tenant's data. Refuses unusable tenants."""
    if tenant.status not in Tenant.VISIBLE_STATUSES:
        raise TenantDatabaseError(f"Tenant {tenant.slug!r} is {tenant.status}; its data is closed.")
    return ensure_alias(tenant)


# --- Creation and drop ---------------------------------------------------------------------


def _maintenance_connection(server: str) -> psycopg.Connection[Any]:
    """A psycopg connection to the server's maintenance database, in autocommit."""
    import psycopg

    cfg = server_settings(server)
    params: dict[str, Any] = {
        "dbname": "postgres",
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
        "autocommit": True,
        "connect_timeout": 10,
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None})


def database_exists(tenant: Tenant) -> bool:
    cfg = server_settings(tenant.db_server)
    if cfg["ENGINE"] == "django.db.backends.sqlite3":
        return sqlite_path(tenant.db_name).exists()
    with _maintenance_connection(tenant.db_server) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [tenant.db_name]
        ).fetchone()
        return row is not None


def create_database(tenant: Tenant) -> bool:
    """Create the tenant database if it does not exist. Returns True when it was created."""
    from psycopg import sql

    cfg = server_settings(tenant.db_server)
    if cfg["ENGINE"] == "django.db.backends.sqlite3":
        path = sqlite_path(tenant.db_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return False
        # WAL suits one writer and many readers; the setting is kept in the file.
        created = sqlite3.connect(str(path))
        try:
            created.execute("PRAGMA journal_mode=WAL")
        finally:
            created.close()
        return True
    if database_exists(tenant):
        return False
    try:
        with _maintenance_connection(tenant.db_server) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(tenant.db_name)))
    except Exception as exc:
        if database_exists(tenant):  # a concurrent run created it: fine, it is idempotent
            return False
        raise TenantDatabaseError(f"Could not create database {tenant.db_name!r}: {exc}") from exc
    return True


def drop_database(tenant: Tenant) -> bool:
    """Drop the tenant database if it exists. Returns True when something was dropped."""
    from psycopg import sql

    drop_alias(tenant)
    cfg = server_settings(tenant.db_server)
    if cfg["ENGINE"] == "django.db.backends.sqlite3":
        path = sqlite_path(tenant.db_name)
        existed = path.exists()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return existed
    if not database_exists(tenant):
        return False
    try:
        with _maintenance_connection(tenant.db_server) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(tenant.db_name)
                )
            )
    except Exception as exc:
        raise TenantDatabaseError(f"Could not drop database {tenant.db_name!r}: {exc}") from exc
    return True


# --- Migrations ----------------------------------------------------------------------------


def migrate_database(
    tenant: Tenant, *, target: list[tuple[str, str]] | None = None
) -> dict[str, str | None]:
    """Apply the tenant apps' migrations (all, or up to ``target``). Idempotent.

    Returns the resulting schema version: ``{"accounts": "0001_initial"}``.
    """
    alias = ensure_alias(tenant)
    try:
        if target:
            for app_label, name in target:
                call_command(
                    "migrate", app_label, name, database=alias, verbosity=0, interactive=False
                )
        else:
            for app_label in TENANT_APPS:
                call_command("migrate", app_label, database=alias, verbosity=0, interactive=False)
    except Exception as exc:
        raise TenantDatabaseError(f"Migrating {tenant.slug!r} failed: {exc}") from exc
    finally:
        connections[alias].close()
    return applied_schema_version(tenant)


def applied_schema_version(tenant: Tenant) -> dict[str, str | None]:
    alias = ensure_alias(tenant)
    executor = MigrationExecutor(connections[alias])
    applied = executor.loader.applied_migrations
    version = {}
    for app_label in TENANT_APPS:
        names = sorted(name for (app, name) in applied if app == app_label)
        version[app_label] = names[-1] if names else None
    connections[alias].close()
    return version


def latest_schema_version() -> dict[str, str | None]:
    """The newest migration of each tenant app, from the code (no database needed)."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    version = {}
    for app_label in TENANT_APPS:
        leaves = loader.graph.leaf_nodes(app_label)
        version[app_label] = leaves[0][1] if leaves else None
    return version


def is_behind(tenant: Tenant) -> bool:
    return tenant.schema_version != latest_schema_version()
