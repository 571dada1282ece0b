"""Per-tenant user figures kept in the control database (``tenants.TenantFigures``).

The instance pages (the console home, ``/tenants/``) list hundreds or thousands of tenants;
counting in each tenant's database on every look opened a connection per tenant (at 1,000
tenants the page timed out). Here each tenant's figures are counted in its own database by the
job runner and stored in the control database; the pages read one indexed table, paginated.

When they are refreshed:

- after every audited change in a tenant (``audit.signals.recorded``): the first change since
  the last refresh marks the row dirty (one ``UPDATE ... WHERE dirty_at IS NULL``) and queues
  ``figures_refresh`` a couple of seconds later, after the change's own transactions; later
  changes find the row dirty already and queue nothing (the task row is written in the
  change's control transaction);
- by ``figures_sweep``, which the job workers queue every ``TENANT_FIGURES_SWEEP_SECONDS``:
  it refreshes the tenants whose figures are missing, dirty or older than
  ``TENANT_FIGURES_MAX_AGE`` (time alone changes "active in 30 days" and lifts bans), at most
  ``TENANT_FIGURES_SWEEP_BATCH`` per run, oldest first;
- ``manage.py tenants figures [slug | --all]`` does it at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_tasks import task

from accounts.app_users.stats import Figure, count, user_count
from tenants import db as tenant_db
from tenants.models import Tenant, TenantFigures

log = logging.getLogger(__name__)

FIELDS = ("users", "active_7", "active_30", "banned", "invited", "mfa")
REFRESH_DELAY_SECONDS = 2


def max_age() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "TENANT_FIGURES_MAX_AGE", 900)))


def sweep_batch() -> int:
    return max(int(getattr(settings, "TENANT_FIGURES_SWEEP_BATCH", 200)), 1)


@dataclass(frozen=True)
class StoredFigures:
    """What the pages show of one tenant (read from ``TenantFigures``, never counted here)."""

    total: Figure | None
    active_7: Figure | None
    active_30: Figure | None
    banned: Figure | None
    pending_invitations: Figure | None
    mfa: Figure | None
    mfa_percent: float | None
    refreshed_at: dt.datetime | None
    error: str = ""


NOT_COUNTED = StoredFigures(None, None, None, None, None, None, None, None, error="not counted yet")
_STORED_COLUMNS = (*FIELDS, "kinds", "error", "refreshed_at")


def _stored(values: dict[str, Any]) -> StoredFigures:
    """``values``: the columns of a ``TenantFigures`` row (``_STORED_COLUMNS``)."""
    if values["refreshed_at"] is None:
        return NOT_COUNTED
    kinds = values["kinds"] or {}

    def figure(name: str) -> Figure | None:
        value = values[name]
        if value is None:
            return None
        kind = kinds.get(name, "")
        return Figure(value, approximate=kind == "approximate", capped=kind == "capped")

    total, mfa = figure("users"), figure("mfa")
    percent = None
    if total and mfa and total.value:
        percent = round(100 * min(mfa.value / total.value, 1.0), 1)  # type: ignore[operator]
    return StoredFigures(
        total, figure("active_7"), figure("active_30"), figure("banned"), figure("invited"), mfa,
        percent, values["refreshed_at"], error=values["error"],
    )


def stored(tenant: Tenant) -> StoredFigures:
    """The figures of ``tenant`` as stored (``tenant.figures`` prefetched: no query)."""
    try:
        row = tenant.figures
    except TenantFigures.DoesNotExist:
        return NOT_COUNTED
    return _stored({name: getattr(row, name) for name in _STORED_COLUMNS})


def with_figures(tenants: QuerySet[Tenant]) -> QuerySet[Tenant]:
    """``tenants`` with their stored figures joined in (one query for the page)."""
    return tenants.select_related("figures")


# --- A page of tenants -----------------------------------------------------------------------


@dataclass(slots=True)
class ListedTenant:
    """A tenant as the instance pages list it (home, ``/tenants/``, the switcher): the columns
    they show and its stored figures, read as values. A page of 50 ``Tenant`` and
    ``TenantFigures`` instances cost twice the page's own SQL; these rows cost a tenth of it."""

    pk: Any
    slug: str
    name: str
    status: str
    is_default: bool
    db_server: str
    db_name: str
    schema_version: dict[str, Any]
    created_at: dt.datetime
    figures: StoredFigures | None = None
    extra: dict[str, Any] | None = None  # the annotations asked for

    @property
    def is_usable(self) -> bool:
        return self.status in Tenant.VISIBLE_STATUSES

    def get_status_display(self) -> str:
        return str(Tenant.Status(self.status).label)


_LISTED_COLUMNS = ("pk", "slug", "name", "status", "is_default", "db_server", "db_name", "schema_version",
                   "created_at")


def listed(tenants: QuerySet[Tenant], *, start: int = 0, stop: int | None = None, figures: bool = True,
           extra: tuple[str, ...] = ()) -> list[ListedTenant]:
    """``tenants[start:stop]`` as ``ListedTenant`` rows (one query), with their stored figures
    (``figures=True``) and the annotations named in ``extra``."""
    stored_columns = tuple(f"figures__{name}" for name in _STORED_COLUMNS) if figures else ()
    n, m = len(_LISTED_COLUMNS), len(_LISTED_COLUMNS) + len(stored_columns)
    out = []
    for row in tenants.values_list(*_LISTED_COLUMNS, *stored_columns, *extra)[start:stop]:
        item = ListedTenant(*row[:n])
        if figures:
            item.figures = _stored(dict(zip(_STORED_COLUMNS, row[n:m], strict=True)))
        if extra:
            item.extra = dict(zip(extra, row[m:], strict=True))
        out.append(item)
    return out


# --- Counting (one tenant database) ----------------------------------------------------------


def _count(tenant: Tenant) -> dict[str, Any]:
    from accounts.models import AppUser

    alias = tenant_db.using(tenant)
    now = timezone.now()
    users = AppUser.objects.using(alias).filter(deleted_at__isnull=True)
    total = user_count(tenant, cached=False)
    if total.error:
        raise DatabaseError(total.error)
    figures = {
        "users": total,
        "active_7": count(users.filter(last_sign_in_at__gte=now - dt.timedelta(days=7))),
        "active_30": count(users.filter(last_sign_in_at__gte=now - dt.timedelta(days=30))),
        "banned": count(users.filter(ban_row__banned_until__gt=now)),
        "invited": count(users.filter(invited_at__isnull=False, email_confirmed_at__isnull=True)),
        "mfa": count(users.filter(mfa_enabled=True)),
    }
    values: dict[str, Any] = {name: f.value for name, f in figures.items()}
    values["kinds"] = {
        name: "approximate" if f.approximate else "capped"
        for name, f in figures.items() if f.approximate or f.capped
    }
    return values


def figures_refresh(tenant: Tenant) -> TenantFigures:
    """Count ``tenant``'s figures in its database and store them. A tenant that has no usable
    database, or whose database does not answer, keeps its last figures with an error."""
    started = timezone.now()
    error = ""
    values: dict[str, Any] = {}
    if not tenant.is_usable:
        error = tenant.get_status_display().lower()
    else:
        try:
            values = _count(tenant)
        except (DatabaseError, tenant_db.TenantDatabaseError) as exc:
            log.warning("Counting the figures of tenant %s failed: %s", tenant.slug, exc)
            error = "database unreachable"
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        row, _ = TenantFigures.objects.select_for_update().get_or_create(tenant=tenant)
        for name, value in values.items():
            setattr(row, name, value)
        row.error = error
        row.refreshed_at = timezone.now()
        if row.dirty_at is not None and row.dirty_at <= started:
            row.dirty_at = None  # a change after we started counting keeps it dirty
        row.save()
    return row


def figures_mark_dirty(tenant_id: Any) -> None:
    """A change happened in the tenant: queue one refresh unless one is queued already."""
    now = timezone.now()
    marked = TenantFigures.objects.filter(tenant_id=tenant_id, dirty_at__isnull=True).update(dirty_at=now)
    if not marked:
        if TenantFigures.objects.filter(tenant_id=tenant_id).exists():
            return  # dirty already: its refresh is queued
        _, created = TenantFigures.objects.get_or_create(tenant_id=tenant_id, defaults={"dirty_at": now})
        if not created:
            return
    # The task row is written in the change's own control transaction (django-tasks-db): it
    # commits or rolls back with it; ``run_after`` lets the tenant transaction land first.
    when = now + dt.timedelta(seconds=REFRESH_DELAY_SECONDS)
    figures_refresh_task.using(run_after=when).enqueue(str(tenant_id))


def due(*, now: dt.datetime | None = None) -> QuerySet[Tenant]:
    """Tenants whose figures are missing, dirty or older than ``max_age()``, oldest first."""
    now = now or timezone.now()
    return (
        Tenant.objects.exclude(status=Tenant.Status.PURGED)
        .filter(Q(figures__isnull=True) | Q(figures__dirty_at__isnull=False)
                | Q(figures__refreshed_at__lt=now - max_age()))
        .order_by("figures__refreshed_at", "slug")
    )


def figures_sweep_run(*, limit: int | None = None) -> int:
    """Refresh the tenants that are due (see ``due``), at most ``limit``; returns how many."""
    done = 0
    for tenant in list(due()[: limit or sweep_batch()]):
        try:
            figures_refresh(tenant)
        finally:
            _close(tenant)
        done += 1
    return done


def _close(tenant: Tenant) -> None:
    """A sweep visits many tenants: it keeps none of their connections open."""
    tenant_db.close_connection(tenant)


@task(queue_name="default")
def figures_refresh_task(tenant_id: str) -> str:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return "gone"
    row = figures_refresh(tenant)
    return row.error or "ok"


@task(queue_name="default")
def figures_sweep() -> int:
    return figures_sweep_run()


def figures_sweep_path() -> str:
    return figures_sweep.module_path


# Audited changes of a tenant that change none of its figures (a schema migration: ``migrate
# --all`` would otherwise queue a refresh of every tenant).
FIGURES_UNCHANGED = frozenset({"tenant.migrate", "tenant.migrate_failed"})


def on_recorded(sender: Any, tenant_id: Any = None, event: str = "", **kwargs: Any) -> None:
    """``audit.signals.recorded``: every audited change of a tenant marks its figures dirty."""
    if tenant_id is not None and event not in FIGURES_UNCHANGED:
        figures_mark_dirty(tenant_id)
