"""Connection planning: how many connections the deployment can open on each PostgreSQL server,
against what each server accepts (``manage.py tenants capacity``, and the system check
``tenants.E010`` when ``migrate`` or ``check --database default`` runs).

Every thread that serves requests or runs tasks holds at most one control connection and
``max(TENANT_CONNECTIONS_PER_THREAD, 1)`` tenant connections (``tenants.db`` closes the least
recently used beyond that). Nothing guarantees that a thread's tenant connections are spread
over the servers, so the plan assumes the worst: all of them on the same server. Threads:

- web: ``APP_SERVERS`` x ``WEB_WORKERS`` x ``WEB_THREADS``;
- job workers (``JOB_WORKERS``): the task thread, plus the heartbeat thread's control connection;
- mail workers (``MAIL_WORKERS``): one thread.

A server reached through a pooler in transaction mode (``DATABASE_POOLER=transaction``) takes
any number of client connections; what reaches PostgreSQL is the pooler's pool, so the plan
there is the pooler's ``max_client_conn`` to set, not a limit of PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tenants import db


@dataclass(frozen=True)
class Threads:
    web: int
    jobs: int
    mail: int

    @property
    def total(self) -> int:
        return self.web + self.jobs + self.mail


@dataclass(frozen=True)
class ServerPlan:
    server: str
    planned: int  # connections the deployment may open there at most
    max_connections: int | None  # the server's, less its superuser reserve (None: unknown)
    reserved: int
    pooled: bool
    error: str = ""

    @property
    def available(self) -> int | None:
        return None if self.max_connections is None else self.max_connections - self.reserved

    @property
    def fits(self) -> bool | None:
        if self.pooled:
            return True
        return None if self.available is None else self.planned <= self.available


def _int(name: str, default: int) -> int:
    return max(int(getattr(settings, name, default)), 0)


def threads() -> Threads:
    web = _int("APP_SERVERS", 1) * _int("WEB_WORKERS", 4) * max(_int("WEB_THREADS", 1), 1)
    return Threads(web=web, jobs=_int("JOB_WORKERS", 1), mail=_int("MAIL_WORKERS", 1))


def tenant_connections_per_thread() -> int:
    return max(db.connections_per_thread(), 1)


def planned_connections(server: str) -> int:
    """The most connections the deployment can hold on ``server`` at once (see the module)."""
    t = threads()
    tenant = t.total * tenant_connections_per_thread()
    control = (t.total + t.jobs) if server == "default" else 0  # + each job worker's heartbeat
    return tenant + control


def pooled() -> bool:
    return bool(getattr(settings, "DATABASE_POOLER", ""))


def _server_limits(server: str) -> tuple[int, int]:
    with db._maintenance_connection(server) as conn:
        rows = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('max_connections', 'superuser_reserved_connections')"
        ).fetchall())
    return int(rows["max_connections"]), int(rows.get("superuser_reserved_connections", 0))


def plan() -> list[ServerPlan]:
    """One line per PostgreSQL server (none on SQLite: nothing to plan)."""
    if db.control_vendor() != "postgresql":
        return []
    plans = []
    for server in db.server_keys():
        planned = planned_connections(server)
        try:
            limit, reserved = _server_limits(server)
        except Exception as exc:  # noqa: BLE001 - an unreachable server is reported, not raised
            plans.append(ServerPlan(server, planned, None, 0, pooled(), error=str(exc).strip()[:200]))
            continue
        plans.append(ServerPlan(server, planned, limit, reserved, pooled()))
    return plans


def server_key_errors() -> list[str]:
    """What is wrong with ``TENANT_DATABASE_SERVERS`` / ``TENANT_DEFAULT_SERVER`` (no query)."""
    problems = []
    for key in db.server_keys():
        try:
            db.server_settings(key)
        except (ImproperlyConfigured, ValueError) as exc:
            problems.append(f"Tenant server {key!r}: {exc}")
    default = getattr(settings, "TENANT_DEFAULT_SERVER", "default")
    if default not in db.server_keys():
        problems.append(f"TENANT_DEFAULT_SERVER is {default!r}, which is not a key of "
                        f"TENANT_DATABASE_SERVERS ({', '.join(db.server_keys())}).")
    return problems


def unknown_placements() -> dict[str, int]:
    """Servers that tenants are placed on but that are not configured: ``{key: tenants}``."""
    from django.db import DatabaseError, transaction
    from django.db.models import Count

    from tenants.models import Tenant

    known = set(db.server_keys())
    rows = (Tenant.objects.exclude(status=Tenant.Status.PURGED).exclude(db_server__in=known)
            .values("db_server").annotate(n=Count("pk")))
    try:
        with transaction.atomic():  # a failed query must not break the caller's transaction
            return {row["db_server"]: row["n"] for row in rows}
    except DatabaseError:  # before the first migrate: no table yet, nothing placed anywhere
        return {}


def describe() -> dict[str, Any]:
    """Everything ``tenants capacity`` prints, as data."""
    t = threads()
    return {
        "threads": {"web": t.web, "jobs": t.jobs, "mail": t.mail, "total": t.total},
        "tenant_connections_per_thread": tenant_connections_per_thread(),
        "pooler": getattr(settings, "DATABASE_POOLER", "") or None,
        "servers": [
            {"server": p.server, "planned": p.planned, "max_connections": p.max_connections,
             "reserved": p.reserved, "available": p.available, "fits": p.fits, "error": p.error}
            for p in plan()
        ],
    }
