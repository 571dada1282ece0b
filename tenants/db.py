"""The tenancy plane's database layer: aliases, placement, creation, migration, drop.

Every tenant database is reached through an alias registered at run time in
``django.db.connections`` by ``ensure_alias()``. The entry is a deep copy of ``default`` (a
hand-written dict would miss keys Django fills at start-up) with the server and name changed.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import secrets
import shutil
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import dj_database_url
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader

from core.errors import Conflict
from tenants.models import Tenant

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

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
    # Closed after each request unless kept (_settings_for: the few a thread used last).
    base["CONN_MAX_AGE"] = 0
    if base["ENGINE"] == "django.db.backends.postgresql":
        # One unreachable tenant server must not hang a page that lists many tenants.
        base["OPTIONS"] = {"connect_timeout": 5, **base.get("OPTIONS", {})}
    base["TEST"] = {**base.get("TEST", {}), "MIRROR": None}
    return base


def server_keys() -> list[str]:
    """Every tenant database server: ``default`` (the control server) and the configured ones."""
    servers = getattr(settings, "TENANT_DATABASE_SERVERS", {}) or {}
    return ["default", *(key for key in servers if key != "default")]


def database_settings(tenant: Tenant) -> dict[str, Any]:
    return _settings_for(tenant.db_server, tenant.db_name)


def sqlite_path(db_name: str) -> Path:
    return Path(settings.TENANT_SQLITE_DIR) / f"{db_name}.sqlite3"


def _alias_name(tenant: Tenant) -> str:
    """The connection alias of a tenant's database. Private: everything outside this module
    gets it from ``using()``, which registers it first (a fresh worker has no alias yet)."""
    return f"{ALIAS_PREFIX}{tenant.slug}"


# --- The alias registry and the connections kept open -----------------------------------------
#
# Django walks every registered alias on each request (``request_started``/``request_finished``:
# ``reset_queries`` and ``close_old_connections`` iterate ``connections.all()``), so a worker that
# has seen thousands of tenants pays for all of them on every request, and a closed connection
# costs a new connect (and the ``pg_type`` lookups below) on the next one. Here:
#
# - the registry (``connections.settings``) holds at most ``TENANT_ALIASES_MAX`` tenant aliases,
#   least recently used evicted first. An evicted alias is remembered by its server and database
#   name alone, and comes back by itself when used again: an alias handed out by ``using()``
#   never stops working, whatever other threads register meanwhile;
# - iterating the registry (what Django's handlers do) yields the control aliases and the tenant
#   aliases the *current thread* has a connection object for: per request the cost is flat,
#   whatever the number of aliases;
# - each thread keeps its ``TENANT_CONNECTIONS_PER_THREAD`` most recently used tenant
#   connections open between requests (``CONN_MAX_AGE`` = ``TENANT_CONN_MAX_AGE``); older ones
#   are closed when the thread opens a new one, and at the end of every request.


def connections_per_thread() -> int:
    return max(int(getattr(settings, "TENANT_CONNECTIONS_PER_THREAD", 4)), 0)


def aliases_max() -> int:
    return max(int(getattr(settings, "TENANT_ALIASES_MAX", 64)), 1, 2 * connections_per_thread())


class _Held(threading.local):
    """The tenant aliases this thread has a connection object for, least recently used first."""

    def __init__(self) -> None:
        self.aliases: OrderedDict[str, None] = OrderedDict()


_held = _Held()
_order: OrderedDict[str, None] = OrderedDict()  # registered tenant aliases, LRU first
_ghosts: dict[str, tuple[str, str]] = {}  # alias -> (server, db_name) of every known tenant
_names: dict[str, str] = {}  # registered alias -> the database name it was registered for


class _Registry(dict):
    """``connections.settings`` with tenant aliases bounded (see above). Django's handler asks
    ``alias in settings`` before it builds a connection object: that is where an evicted alias
    comes back, and where the current thread's list of held aliases learns about it."""

    def __iter__(self) -> Iterator[str]:
        held = _held.aliases
        keys = [key for key in list(dict.keys(self)) if not is_tenant_alias(key) or key in held]
        return iter(keys)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not is_tenant_alias(key):
            return dict.__contains__(self, key)
        if not dict.__contains__(self, key):
            if key not in _ghosts:
                return False
            server, name = _ghosts[key]
            _register(self, key, server, name)
        _held.aliases[key] = None
        _held.aliases.move_to_end(key)
        return True

    def __getitem__(self, key: str) -> dict[str, Any]:
        if is_tenant_alias(key) and not dict.__contains__(self, key) and key in _ghosts:
            self.__contains__(key)
        return dict.__getitem__(self, key)


def _objects() -> Any:
    """Django's per-thread store of connection objects (``ConnectionHandler._connections``)."""
    return cast(Any, connections)._connections


def _registry() -> _Registry:
    current = connections.settings
    if type(current) is _Registry:
        return current
    with _lock:
        current = connections.settings
        if type(current) is not _Registry:
            # override_settings(DATABASES=...) rebuilds the settings: wrap the new ones too.
            current = _Registry(current)
            connections.__dict__["settings"] = current
            cast(Any, connections)._settings = current
            _order.clear()
            _order.update((key, None) for key in dict.keys(current) if is_tenant_alias(key))
    return current


def _settings_for(server: str, db_name: str) -> dict[str, Any]:
    cfg = server_settings(server)
    if cfg["ENGINE"] == "django.db.backends.sqlite3":
        # mode=rw: connecting never creates the file; only create_database() does. A page that
        # looks at a tenant still provisioning gets an error, not an empty database.
        cfg["NAME"] = f"file:{quote(str(sqlite_path(db_name)))}?mode=rw"
    else:
        cfg["NAME"] = db_name
    keep = connections_per_thread()
    if keep:
        # Kept open between requests (bounded per thread, see above), checked before reuse.
        cfg["CONN_MAX_AGE"] = int(getattr(settings, "TENANT_CONN_MAX_AGE", 300))
        cfg["CONN_HEALTH_CHECKS"] = True
    return cfg


def _register(registry: _Registry, alias: str, server: str, db_name: str) -> None:
    with _lock:
        if not dict.__contains__(registry, alias):
            dict.__setitem__(registry, alias, _settings_for(server, db_name))
        _order[alias] = None
        _order.move_to_end(alias)
        _names[alias] = db_name
        _ghosts[alias] = (server, db_name)
        limit = aliases_max()
        while len(_order) > limit:
            victim, _ = _order.popitem(last=False)
            # Other threads' connection objects for it stay usable; each thread closes its
            # own at the end of its request (release_connections).
            dict.pop(registry, victim, None)
            _names.pop(victim, None)


def ensure_alias(tenant: Tenant) -> str:
    """Register (or refresh the place of) and return the alias of the tenant's database."""
    alias = _alias_name(tenant)
    registry = _registry()
    if _names.get(alias) == tenant.db_name and dict.__contains__(registry, alias):
        with _lock:
            if alias in _order:
                _order.move_to_end(alias)
    else:
        if alias in _names and _names[alias] != tenant.db_name:
            drop_alias(tenant)  # the slug points at another database now (tests reuse slugs)
        _register(registry, alias, tenant.db_server, tenant.db_name)
    _use(alias)
    return alias


def _use(alias: str) -> None:
    """This thread uses ``alias`` now: it becomes the most recent; the thread's connections
    beyond the kept number are closed (never one inside a transaction)."""
    held = _held.aliases
    held[alias] = None
    held.move_to_end(alias)
    keep = max(connections_per_thread(), 1)
    if len(held) > keep:
        _release(keep=keep, spare=alias)


def _release(*, keep: int, spare: str | None = None) -> None:
    held = _held.aliases
    registry = connections.settings
    candidates = list(held)[: max(len(held) - keep, 0)]
    for alias in candidates:
        if alias == spare:
            continue
        try:
            conn = getattr(_objects(), alias)
        except AttributeError:
            held.pop(alias, None)
            continue
        if conn.in_atomic_block:
            continue  # in a transaction: closing would break it; next time
        try:
            conn.close()
        except Exception:  # noqa: BLE001, S110 - closing a dead connection must not block
            pass
        held.pop(alias, None)
        try:
            delattr(_objects(), alias)
        except AttributeError:
            pass
    # Objects of aliases evicted from the registry by other threads go too.
    for alias in [a for a in held if not dict.__contains__(registry, a) and a != spare]:
        try:
            conn = getattr(_objects(), alias)
        except AttributeError:
            held.pop(alias, None)
            continue
        if not conn.in_atomic_block:
            conn.close()
            held.pop(alias, None)
            delattr(_objects(), alias)


def release_connections(**kwargs: Any) -> None:
    """``request_finished`` (after Django's own handler): this thread keeps its most recently
    used tenant connections, up to the kept number, and nothing of evicted aliases."""
    _release(keep=connections_per_thread())


def open_tenant_connections() -> int:
    """How many tenant connections this thread holds open (for tests and the capacity page)."""
    count = 0
    for alias in list(_held.aliases):
        conn = getattr(_objects(), alias, None)
        if conn is not None and conn.connection is not None:
            count += 1
    return count


def registered_aliases() -> int:
    """How many tenant aliases this process has registered (at most ``aliases_max()``)."""
    return len(_order)


def close_connection(tenant: Tenant) -> None:
    """Close this thread's connection to the tenant's database, if it has one (a command or a
    task that visits many tenants keeps none of them open)."""
    conn = getattr(_objects(), _alias_name(tenant), None)
    if conn is not None and not conn.in_atomic_block:
        conn.close()


def drop_alias(tenant: Tenant) -> None:
    alias = _alias_name(tenant)
    registry = _registry()
    with _lock:
        try:
            conn = getattr(_objects(), alias)
        except AttributeError:
            pass
        else:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing a dead connection must not block
                pass
            delattr(_objects(), alias)
        dict.pop(registry, alias, None)
        _order.pop(alias, None)
        _names.pop(alias, None)
        _ghosts.pop(alias, None)
        _held.aliases.pop(alias, None)


# --- django.contrib.postgres's type lookups -----------------------------------------------------
#
# ``django.contrib.postgres`` (installed for its index classes) connects ``register_type_handlers``
# to ``connection_created``. For every new connection it looks up the hstore and citext OIDs
# through ``get_hstore_oids(alias)`` and ``get_citext_oids(alias)``: two ``SELECT ... FROM
# pg_type`` queries, each memoised by ``functools.lru_cache`` *per alias* with the default
# ``maxsize=128`` (django/contrib/postgres/signals.py). Past 128 tenants per worker the memo
# thrashes and every connection pays both queries again. Tenant databases all come from the
# same migrations (copies of one template), which create neither type: for tenant aliases the
# answer is looked up once per server and schema, and shared.

_type_oids: dict[tuple[str, str], tuple[Any, Any]] = {}


def register_type_handlers(connection: Any, **kwargs: Any) -> None:
    from django.contrib.postgres import signals as pg_signals

    if connection.vendor != "postgresql":
        return
    if not is_tenant_alias(connection.alias) or connection.alias not in _ghosts:
        pg_signals.register_type_handlers(connection, **kwargs)
        return
    key = (_ghosts[connection.alias][0], schema_fingerprint())
    if key not in _type_oids:
        _type_oids[key] = (
            pg_signals.get_type_oids(connection.alias, "hstore"),
            pg_signals.get_type_oids(connection.alias, "citext"),
        )
    (oids, array_oids), (_, citext_arrays) = _type_oids[key]
    if oids or citext_arrays:
        from psycopg.types import TypeInfo, hstore

        for oid, array_oid in zip(oids, array_oids, strict=True):
            hstore.register_hstore(TypeInfo("hstore", oid, array_oid), connection.connection)
        for array_oid in citext_arrays:
            TypeInfo("citext", 0, array_oid).register(connection.connection)


def install_type_handlers() -> None:
    """Put ``register_type_handlers`` above in the place of django.contrib.postgres's own."""
    from django.apps import apps
    from django.db.backends.signals import connection_created

    if not apps.is_installed("django.contrib.postgres"):
        return
    from django.contrib.postgres import signals as pg_signals

    connection_created.disconnect(pg_signals.register_type_handlers)
    connection_created.connect(register_type_handlers, dispatch_uid="tenants.db.type_handlers")


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
        return _exists(conn, tenant.db_name)


def create_database(tenant: Tenant) -> bool:
    """Create the tenant database if it does not exist. Returns True when it was created.

    The new database is a copy of the migrated template of the current schema (see "Template
    databases" below) when one can be had; otherwise it is empty and the ``migrate`` step of
    the creation migrates it. Either way ``migrate_database`` then brings it to the newest
    schema (a no-op after a template copy).
    """
    from psycopg import errors, sql

    cfg = server_settings(tenant.db_server)
    _fresh_copies.pop((tenant.db_server, tenant.db_name), None)  # only this call's copy counts
    if cfg["ENGINE"] == "django.db.backends.sqlite3":
        return _create_sqlite(tenant)
    template = ensure_template(tenant.db_server)
    try:
        with _maintenance_connection(tenant.db_server) as conn:
            for attempt in range(3):
                if _exists(conn, tenant.db_name):
                    return False  # created by an earlier run, or a concurrent one: idempotent
                statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(tenant.db_name))
                if template:
                    statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                    # PostgreSQL waits 5 s for sessions in the template before it refuses: look
                    # first (nothing of ours connects there; a stray psql might).
                    _end_sessions(conn, template)
                try:
                    conn.execute(statement)
                    if template:
                        _note_copy(tenant)
                    return True
                except errors.ObjectInUse:
                    # "source database is being accessed by other users": a stray session sits
                    # in the template (nothing of ours connects to it). End it and try again;
                    # in the end fall back to an empty database the migrate step migrates.
                    _end_sessions(conn, template or "")
                    if attempt == 1:
                        log.warning("Template %s stays busy; %s starts empty", template, tenant.db_name)
                        template = None
                except errors.InvalidCatalogName:
                    # The template vanished (dropped by hand, or pruned by a newer release).
                    _forget_template(tenant.db_server)
                    template = ensure_template(tenant.db_server) if attempt == 0 else None
                except errors.DuplicateDatabase:
                    return False
    except TenantDatabaseError:
        raise
    except Exception as exc:
        if database_exists(tenant):  # a concurrent run created it: fine, it is idempotent
            return False
        raise TenantDatabaseError(f"Could not create database {tenant.db_name!r}: {exc}") from exc
    raise TenantDatabaseError(f"Could not create database {tenant.db_name!r}: the template stayed busy.")


# Databases this process has just copied from the template of the current schema: the migrate
# step that follows has nothing to do and need not connect to find out (a fresh database's
# first connection costs tens of milliseconds). Only the last ``create_database`` call counts
# (one that found the database there, or made it empty, clears it); a retry in another process
# asks the database.
_fresh_copies: dict[tuple[str, str], str] = {}


def _note_copy(tenant: Tenant) -> None:
    _fresh_copies[(tenant.db_server, tenant.db_name)] = schema_fingerprint()


def _exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _create_sqlite(tenant: Tenant) -> bool:
    path = sqlite_path(tenant.db_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return False
    template = ensure_template(tenant.db_server)
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        if template:
            shutil.copyfile(template, part)
        else:
            # WAL suits one writer and many readers; the setting is kept in the file.
            created = sqlite3.connect(str(part))
            try:
                created.execute("PRAGMA journal_mode=WAL")
            finally:
                created.close()
        # A hard link appears whole or not at all, and refuses to replace a file a concurrent
        # creation put there first: a half-copied file is never a tenant's database.
        try:
            os.link(part, path)
        except FileExistsError:
            return False
        if template:
            _note_copy(tenant)
        return True
    finally:
        part.unlink(missing_ok=True)


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


@functools.cache
def _migration_loader() -> MigrationLoader:
    """The migrations on disk (no database). Built once per process: the code does not change
    under a running process, and building it costs tens of milliseconds."""
    return MigrationLoader(None, ignore_no_migrations=True)


@functools.cache
def required_migrations() -> frozenset[tuple[str, str]]:
    """Every migration a current tenant database has applied: the tenant apps' leaves and all
    they depend on (other apps' migrations are recorded there too, without tables)."""
    graph = _migration_loader().graph
    needed: set[tuple[str, str]] = set()
    for app_label in TENANT_APPS:
        for leaf in graph.leaf_nodes(app_label):
            needed.update(graph.forwards_plan(leaf))
    return frozenset(needed)


@functools.cache
def schema_fingerprint() -> str:
    """A short hash of the tenant schema: the migrations a current tenant has, and the source of
    the tenant apps' own ones (a migration edited in place gets a new template too)."""
    loader = _migration_loader()
    digest = hashlib.sha256()
    for app_label, name in sorted(required_migrations()):
        digest.update(f"{app_label}.{name}\n".encode())
        if app_label in TENANT_APPS:
            module = sys.modules.get(type(loader.disk_migrations[(app_label, name)]).__module__)
            source = getattr(module, "__file__", None)
            if source:
                digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:12]


def _applied(alias: str) -> set[tuple[str, str]]:
    """The migrations recorded in a database: one query (an empty set before the first)."""
    from django.db import DatabaseError

    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT app, name FROM django_migrations")
            return {(app, name) for app, name in cursor.fetchall()}
    except DatabaseError:
        if connections[alias].vendor == "postgresql" and not connections[alias].get_autocommit():
            connections[alias].rollback()
        return set()


def _version(applied: set[tuple[str, str]]) -> dict[str, str | None]:
    version = {}
    for app_label in TENANT_APPS:
        names = sorted(name for (app, name) in applied if app == app_label)
        version[app_label] = names[-1] if names else None
    return version


def _migrate_alias(alias: str, target: list[tuple[str, str]] | None = None) -> None:
    if target:
        for app_label, name in target:
            call_command("migrate", app_label, name, database=alias, verbosity=0, interactive=False)
    else:
        for app_label in TENANT_APPS:
            call_command("migrate", app_label, database=alias, verbosity=0, interactive=False)


def migrate_database(
    tenant: Tenant, *, target: list[tuple[str, str]] | None = None
) -> dict[str, str | None]:
    """Apply the tenant apps' migrations (all, or up to ``target``). Idempotent.

    A database that already has every migration (a copy of the template, or one migrated
    earlier) costs one query, not a run of ``migrate`` (none right after this process copied it
    from the template); one behind replays the plan's SQL when
    it can (see "Replayed migrations" below). Returns the resulting schema version:
    ``{"accounts": "0001_initial"}``.
    """
    if target is None and _fresh_copies.pop((tenant.db_server, tenant.db_name), None) == schema_fingerprint():
        return latest_schema_version()
    alias = ensure_alias(tenant)
    try:
        if target is None:
            applied = _applied(alias)
            if required_migrations() <= applied:
                return _version(applied)
            if replay_plan(alias, tenant.db_server, applied):
                return latest_schema_version()
        _migrate_alias(alias, target)
        return _version(_applied(alias))
    except Exception as exc:
        raise TenantDatabaseError(f"Migrating {tenant.slug!r} failed: {exc}") from exc
    finally:
        connections[alias].close()


# --- Replayed migrations --------------------------------------------------------------------
#
# Django's ``migrate`` costs about 150 ms of Python per database (loader, graph, rendered project
# states, signals) for a few milliseconds of SQL. Tenant databases at the same applied migrations
# have the same schema (they come from the same migrations), so the plan that brings one of them
# to the newest schema is the same for all: on PostgreSQL its SQL is collected once per server
# and applied set (the schema editor's collected SQL, as ``sqlmigrate`` does: on PostgreSQL the
# very statements ``migrate`` executes), then replayed in each database in one transaction with
# its ``django_migrations`` rows. Only plans of atomic, forward migrations whose operations all
# reduce to SQL (schema operations, RunSQL; no RunPython, no squashed migrations) are replayed;
# others, and a database whose replay fails (logged; rolled back whole), go through ``migrate``.
# ``TENANT_MIGRATE_REPLAY = False`` turns replay off. The pre/post_migrate signals ``migrate``
# sends do nothing on a tenant database (the router keeps contenttypes and auth out of them).


@dataclass(frozen=True)
class _Replay:
    statements: tuple[str, ...]
    records: tuple[tuple[str, str], ...]  # django_migrations rows the plan adds


_replays: dict[tuple[str, frozenset[tuple[str, str]]], _Replay | None] = {}
_replays_lock = threading.Lock()


def replay_enabled(alias: str) -> bool:
    return bool(getattr(settings, "TENANT_MIGRATE_REPLAY", True)) and connections[alias].vendor == "postgresql"


def _reduces_to_sql(operation: Any) -> bool:
    from django.db.migrations.operations import RunPython, SeparateDatabaseAndState

    if isinstance(operation, RunPython) or not operation.reduces_to_sql:
        return False
    if isinstance(operation, SeparateDatabaseAndState):
        return all(_reduces_to_sql(inner) for inner in operation.database_operations)
    return True


def _introspects_earlier_work(operations: list[tuple[str, Any]]) -> bool:
    """Whether an operation of the plan finds what to change by introspecting the database
    (``AlterField``'s constraints and indexes, ``RenameField``, ``RenameModel``, ``Alter*Together``)
    on a model an earlier operation of the plan touches: the collected SQL is not executed, so its
    introspection sees the database before the plan and the SQL of the later operation misses what
    the earlier one made (an ``AlterField`` dropping a unique made earlier in the plan drops
    nothing, and the replay succeeds with the constraint left in place)."""
    from django.db.migrations import operations as ops

    introspecting = (ops.AlterField, ops.RenameField, ops.RenameModel, ops.AlterUniqueTogether,
                     ops.AlterIndexTogether)
    for j, (app_label, operation) in enumerate(operations):
        if not isinstance(operation, introspecting):
            continue
        model = getattr(operation, "model_name", None) or operation.name
        names = {model.lower()} | ({operation.new_name.lower()} if isinstance(operation, ops.RenameModel) else set())
        if any(earlier.references_model(name, app_label) for _, earlier in operations[:j] for name in names):
            return True
    return False


def _database_operations(operation: Any) -> list[Any]:
    from django.db.migrations.operations import SeparateDatabaseAndState

    if isinstance(operation, SeparateDatabaseAndState):
        return [inner for op in operation.database_operations for inner in _database_operations(op)]
    return [operation]


def _collect_replay(alias: str) -> _Replay | None:
    """The SQL of the plan that brings the database at ``alias`` to the newest schema, collected
    without changing it; ``None`` when the plan cannot be replayed."""
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[alias]
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    targets = [leaf for app_label in TENANT_APPS for leaf in graph.leaf_nodes(app_label)]
    plan = executor.migration_plan(targets)
    if not plan or any(
        backwards or not migration.atomic or migration.replaces
        or not all(_reduces_to_sql(op) for op in migration.operations)
        for migration, backwards in plan
    ) or _introspects_earlier_work([(migration.app_label, inner) for migration, _ in plan
                                    for op in migration.operations for inner in _database_operations(op)]):
        return None
    statements: list[str] = []
    state = None
    for migration, _ in plan:
        # collect_sql=True on the editor: every statement is collected, none executed (and
        # apply() without collect_sql adds no comments). Introspection still reads this database.
        with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
            if state is None:
                state = executor.loader.project_state((migration.app_label, migration.name), at_end=False)
            state = migration.apply(state, editor)
        statements.extend(editor.collected_sql)
    records = [(migration.app_label, migration.name) for migration, _ in plan]
    after = set(executor.loader.applied_migrations) | set(records)
    for key, squashed in executor.loader.replacements.items():  # as check_replacements() does
        if key not in after and all(m in after for m in squashed.replaces):
            records.append(key)
    return _Replay(tuple(statements), tuple(records))


def replay_plan(alias: str, server: str, applied: set[tuple[str, str]]) -> bool:
    """Bring the database at ``alias`` (with ``applied`` migrations) to the newest schema by
    replaying the collected SQL of its plan. False when it was not replayed (not replayable,
    or the replay failed and was rolled back): the caller runs ``migrate``."""
    from django.db import transaction
    from django.db.migrations.recorder import MigrationRecorder
    from django.utils import timezone

    if not replay_enabled(alias):
        return False
    key = (server, frozenset(applied))
    with _replays_lock:
        if key not in _replays:
            try:
                _replays[key] = _collect_replay(alias)
            except Exception:  # noqa: BLE001 - the plan is migrated the usual way
                log.warning("Collecting the migration SQL on %s failed; migrating with migrate",
                            alias, exc_info=True)
                _replays[key] = None
        replay = _replays[key]
    if replay is None:
        return False
    connection = connections[alias]
    try:
        with transaction.atomic(using=alias):
            if not applied:  # an empty database: no django_migrations yet
                MigrationRecorder(connection).ensure_schema()
            with connection.cursor() as cursor:
                # A concurrent migrate of this database waits here, then finds its work done.
                cursor.execute("LOCK TABLE django_migrations IN EXCLUSIVE MODE")
                cursor.execute("SELECT app, name FROM django_migrations")
                if {(app, name) for app, name in cursor.fetchall()} != applied:
                    raise TenantDatabaseError("its migrations changed meanwhile")
                for statement in replay.statements:
                    cursor.execute(statement)
                now = timezone.now()
                cursor.executemany(
                    "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
                    [(app, name, now) for app, name in replay.records],
                )
    except Exception as exc:  # noqa: BLE001 - rolled back: the usual migrate does it instead
        log.warning("Replaying the migrations on %s failed (%s); migrating with migrate", alias, exc)
        return False
    return True


def applied_schema_version(tenant: Tenant) -> dict[str, str | None]:
    alias = ensure_alias(tenant)
    try:
        return _version(_applied(alias))
    finally:
        connections[alias].close()


@functools.cache
def _latest() -> tuple[tuple[str, str | None], ...]:
    graph = _migration_loader().graph
    version = []
    for app_label in TENANT_APPS:
        leaves = graph.leaf_nodes(app_label)
        version.append((app_label, leaves[0][1] if leaves else None))
    return tuple(version)


def latest_schema_version() -> dict[str, str | None]:
    """The newest migration of each tenant app, from the code (no database needed)."""
    return dict(_latest())


def is_behind(tenant: Tenant) -> bool:
    return tenant.schema_version != latest_schema_version()


# --- Template databases --------------------------------------------------------------------
#
# Creating a tenant by running its migrations costs hundreds of milliseconds; copying a database
# that already ran them costs tens. Each server keeps one migrated template per schema version
# (``schema_fingerprint()``): on PostgreSQL a database ``<prefix>_tpl_<fingerprint>`` marked
# IS_TEMPLATE and closed to connections (so that nothing ever sits in it and blocks
# ``CREATE DATABASE ... TEMPLATE``), on SQLite a file in ``TENANT_SQLITE_DIR/.templates``.
# A template is built on first use (or by ``migrate`` and ``tenants migrate --all``) under a
# lock (an advisory lock on PostgreSQL, a file lock on SQLite), under a temporary name renamed
# once complete: a crashed build never leaves a half-migrated template behind. The prefix's
# double underscore cannot occur in a tenant's database name (slugs have no "--").

_known_templates: dict[str, str] = {}  # server -> template verified to exist in this process


def templates_enabled() -> bool:
    return bool(getattr(settings, "TENANT_TEMPLATE_DATABASES", True))


def _template_prefix() -> str:
    return f"{settings.TENANT_DB_PREFIX}_tpl_"


def template_name() -> str:
    return _template_prefix() + schema_fingerprint()


def _template_dir() -> Path:
    return Path(settings.TENANT_SQLITE_DIR) / ".templates"


def _forget_template(server: str) -> None:
    _known_templates.pop(server, None)


def ensure_template(server: str) -> str | None:
    """The template of the current schema on ``server`` (its database name, or its file path on
    SQLite), built if missing. ``None`` when templates are off or cannot be built (creation
    then migrates an empty database: slower, never wrong)."""
    if not templates_enabled():
        return None
    known = _known_templates.get(server)
    if known is not None and (not known.startswith("/") or Path(known).exists()):
        return known
    try:
        if server_settings(server)["ENGINE"] == "django.db.backends.sqlite3":
            name = _ensure_sqlite_template()
        else:
            name = _ensure_postgres_template(server)
    except Exception:  # noqa: BLE001 - a template is an optimisation: log it and go without
        log.exception("Building the tenant template database on %s failed", server)
        return None
    _known_templates[server] = name
    return name


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


def _template_lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _ensure_postgres_template(server: str) -> str:
    from psycopg import sql

    name = template_name()
    with _maintenance_connection(server) as conn:
        if _is_template(conn, name):
            return name
        # Session-level advisory lock on the maintenance database: one builder per template at
        # a time across every process; released when this connection ends, even by a crash.
        conn.execute("SELECT pg_advisory_lock(%s)", [_template_lock_key(name)])
        try:
            if _is_template(conn, name):
                return name  # built by whoever held the lock before us
            leftovers = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                [_escape_like(f"{name}_b") + "%"],
            ).fetchall()
            for (leftover,) in leftovers:  # a build that crashed: under the lock nobody else builds
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(leftover)))
            if _exists(conn, name):  # an older release's half-marked copy: rebuild it
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            building = f"{name}_b{secrets.token_hex(3)}"
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
            try:
                _migrate_scratch(server, building)
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(building), sql.Identifier(name)))
            except Exception:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(building)))
                raise
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
                         .format(sql.Identifier(name)))
            log.info("Built tenant template database %s on %s", name, server)
            return name
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [_template_lock_key(name)])


def _is_template(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute(
        "SELECT datistemplate AND NOT datallowconn FROM pg_database WHERE datname = %s", [name]
    ).fetchone()
    return bool(row and row[0])


def _end_sessions(conn: psycopg.Connection[Any], template: str) -> None:
    """End the sessions connected to a template (one cheap query when there are none)."""
    if not template:
        return
    ended = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()", [template]
    ).fetchone()
    if ended and ended[0]:
        log.warning("Ended %s session(s) connected to the template %s", ended[0], template)
        for _ in range(20):  # the ended backends leave asynchronously
            time.sleep(0.025)
            left = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                [template]).fetchone()
            if not left or not left[0]:
                break


def _scratch_alias(server: str, db_name: str, sqlite_file: Path | None = None) -> str:
    """A throw-away alias on a database that is no tenant's (a template being built)."""
    alias = f"{ALIAS_PREFIX}_scratch_{secrets.token_hex(4)}"
    cfg = server_settings(server)
    cfg["NAME"] = f"file:{quote(str(sqlite_file))}?mode=rw" if sqlite_file else db_name
    with _lock:
        dict.__setitem__(_registry(), alias, cfg)
    return alias


def _drop_scratch_alias(alias: str) -> None:
    with _lock:
        try:
            connections[alias].close()
        finally:
            dict.pop(connections.settings, alias, None)
            _held.aliases.pop(alias, None)
            try:
                delattr(_objects(), alias)
            except AttributeError:
                pass


def _migrate_scratch(server: str, db_name: str, sqlite_file: Path | None = None) -> None:
    alias = _scratch_alias(server, db_name, sqlite_file)
    try:
        _migrate_alias(alias)
    finally:
        _drop_scratch_alias(alias)


def _ensure_sqlite_template() -> str:
    import fcntl

    directory = _template_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{schema_fingerprint()}.sqlite3"
    if path.exists():
        return str(path)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; released when closed
        if path.exists():
            return str(path)
        building = directory / f".{path.stem}.{secrets.token_hex(3)}.building"
        try:
            created = sqlite3.connect(str(building))
            try:
                created.execute("PRAGMA journal_mode=WAL")
            finally:
                created.close()
            _migrate_scratch("default", "", sqlite_file=building)
            # Everything into the main file (copies take that file alone), then in place.
            done = sqlite3.connect(str(building))
            try:
                done.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                done.close()
            os.replace(building, path)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{building}{suffix}").unlink(missing_ok=True)
        return str(path)


def prune_templates(server: str) -> list[str]:
    """Drop the templates of other schema versions on ``server`` (the current one is kept).
    ``migrate`` and ``tenants migrate --all`` call it: after an upgrade the old ones are dead
    weight (a release still running the old code rebuilds its own if it needs one)."""
    current = template_name()
    if server_settings(server)["ENGINE"] == "django.db.backends.sqlite3":
        directory, dropped = _template_dir(), []
        for path in directory.glob("*.sqlite3") if directory.exists() else []:
            if path.stem != schema_fingerprint():
                path.unlink(missing_ok=True)
                dropped.append(path.name)
        return dropped
    from psycopg import sql

    dropped = []
    with _maintenance_connection(server) as conn:
        # Finished templates only (a build in progress is not marked IS_TEMPLATE yet).
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s "
            "AND datistemplate", [_escape_like(_template_prefix()) + "%", current],
        ).fetchall()
        for (name,) in rows:
            try:
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(
                    sql.Identifier(name)))
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
                dropped.append(name)
            except Exception as exc:  # noqa: BLE001 - in use by a build right now: next time
                log.warning("Could not drop the old template %s: %s", name, exc)
    _forget_template(server)
    return dropped
