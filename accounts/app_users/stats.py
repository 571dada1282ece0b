"""Figures about a tenant's app users: counts for the tenants list, the dashboard, the home page.

Every query is bounded and uses an index of ``AppUser``:

- counts are exact up to ``policy().exact_count_cap`` (``SELECT COUNT(*) FROM (... LIMIT cap+1)``);
  beyond it, PostgreSQL gives the planner's estimate (``pg_class.reltuples`` for the whole table,
  ``EXPLAIN``'s row estimate for a filtered one) and SQLite says "cap+";
- per-day series aggregate with ``TruncDate`` over the window only (``created_at`` range on the
  ``appuser_created_keyset`` index);
- an unreachable tenant database gives a figure with an error, never an exception.

Sign-ins per day. The tenant database keeps no sign-in log, only each user's last sign-in. The
portal records every successful sign-in in the audit trail (event ``app_user.sign_in``, control
database, index ``(tenant, timestamp)``), so that is the source when the tenant has such entries.
Otherwise the series counts the portal sessions created per day (``AppSession.created_at``,
impersonation sessions excluded): a session is created at each sign-in, but sessions deleted
since are missed, and the table has no index on ``created_at`` (a bounded scan of the window).
The two are never added together: each sign-in would count twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.db import DatabaseError, connections
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.models import AuditEntry
from core.policy import policy
from tenants import db as tenant_db
from tenants.models import Tenant

if TYPE_CHECKING:
    from accounts.app_users.figures import ListedTenant

log = logging.getLogger(__name__)

SIGN_IN_EVENT = "app_user.sign_in"
WINDOWS = (30, 90)
CACHE_SECONDS = 60


@dataclass(frozen=True)
class Figure:
    """A count: ``value`` exact, or ``approximate`` (planner estimate), or ``capped`` (≥ value)."""

    value: int | None
    approximate: bool = False
    capped: bool = False
    error: str = ""

    @property
    def display(self) -> str:
        if self.error or self.value is None:
            return "—"
        if self.capped:
            return f"{self.value:,}+"
        if self.approximate:
            return f"≈ {_compact(self.value)}"
        return f"{self.value:,}"

    @property
    def exact(self) -> bool:
        return self.value is not None and not (self.approximate or self.capped or self.error)


def _compact(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + unit
    return str(n)


def _vendor(alias: str) -> str:
    return connections[alias].vendor


def _planner_rows(qs: QuerySet) -> int | None:
    """PostgreSQL's estimate of how many rows ``qs`` returns, without running it."""
    sql, params = qs.query.sql_with_params()
    with connections[qs.db].cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    try:
        return int(plan[0]["Plan"]["Plan Rows"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def count(qs: QuerySet, *, cap: int | None = None) -> Figure:
    """Exact up to ``cap``; beyond it an estimate (PostgreSQL) or ``cap+`` (SQLite)."""
    cap = cap or policy().exact_count_cap
    exact = qs.order_by()[: cap + 1].count()
    if exact <= cap:
        return Figure(exact)
    if _vendor(qs.db) == "postgresql":
        estimate = _planner_rows(qs.order_by())
        if estimate is not None and estimate > cap:
            return Figure(estimate, approximate=True)
    return Figure(cap, capped=True)


def _table_estimate(alias: str, table: str) -> int | None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


def _app_users(alias: str):
    from accounts.models import AppUser

    return AppUser.objects.using(alias)


def user_count(tenant: Tenant, *, cached: bool = True) -> Figure:
    """How many app users (not deleted) the tenant has; cheap for big tenants, cached a minute
    (``cached=False``: counted now). Touches the tenant's database: pages that list many
    tenants read the stored figures instead (``accounts.app_users.figures``).

    A database that does not answer gives ``Figure(None, error=...)``.
    """
    if not tenant.is_usable:
        return Figure(None, error=f"{tenant.status}")
    key = f"tenant-user-count:{tenant.pk}"
    hit = cache.get(key) if cached else None
    if isinstance(hit, dict):
        return Figure(**hit)
    alias = tenant_db.using(tenant)
    cap = policy().exact_count_cap
    try:
        if _vendor(alias) == "postgresql":
            # The planner's statistics first: a big table is never counted row by row.
            estimate = _table_estimate(alias, "accounts_appuser")
            if estimate is not None and estimate > cap:
                figure = Figure(estimate, approximate=True)
            else:
                figure = count(_app_users(alias).filter(deleted_at__isnull=True), cap=cap)
        else:
            figure = count(_app_users(alias).filter(deleted_at__isnull=True), cap=cap)
    except DatabaseError as exc:
        log.warning("Counting the users of tenant %s failed: %s", tenant.slug, exc)
        return Figure(None, error="database unreachable")
    cache.set(key, {"value": figure.value, "approximate": figure.approximate,
                    "capped": figure.capped}, CACHE_SECONDS)
    return figure


@dataclass
class DayPoint:
    day: dt.date
    signups: int
    signins: int


@dataclass
class Dashboard:
    total: Figure
    active_7: Figure
    active_30: Figure
    banned: Figure
    pending_invitations: Figure
    mfa: Figure
    mfa_percent: float | None
    days: int
    series: list[DayPoint] = field(default_factory=list)
    signin_source: str = ""
    error: str = ""


def _per_day(qs: QuerySet, column: str, start: dt.datetime) -> dict[dt.date, int]:
    rows = (
        qs.filter(**{f"{column}__gte": start})
        .annotate(day=TruncDate(column))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by()
    )
    result: dict[dt.date, int] = {}
    for row in rows:
        day = row["day"]
        if isinstance(day, str):  # SQLite without converters
            day = dt.date.fromisoformat(day)
        if isinstance(day, dt.datetime):
            day = day.date()
        result[day] = result.get(day, 0) + row["n"]
    return result


def signins_per_day(tenant: Tenant, alias: str, start: dt.datetime) -> tuple[dict, str]:
    """Sign-ins per day since ``start`` and the source used (see the module docstring)."""
    events = AuditEntry.objects.filter(tenant=tenant, event=SIGN_IN_EVENT)
    if events.exists():
        return _per_day(events, "timestamp", start), "audit"
    from accounts.models import AppSession

    sessions = AppSession.objects.using(alias).filter(impersonator_id__isnull=True)
    return _per_day(sessions, "created_at", start), "sessions"


def _window_start(days: int) -> dt.datetime:
    today = timezone.localdate()
    first = today - dt.timedelta(days=days - 1)
    return dt.datetime.combine(first, dt.time.min, tzinfo=timezone.get_current_timezone())


def dashboard(tenant: Tenant, *, days: int = 30) -> Dashboard:
    """The figures of one tenant's dashboard (``days``: 30 or 90 for the chart)."""
    days = days if days in WINDOWS else WINDOWS[0]
    alias = tenant_db.using(tenant)
    now = timezone.now()
    users = _app_users(alias).filter(deleted_at__isnull=True)
    try:
        total = user_count(tenant)
        active_7 = count(users.filter(last_sign_in_at__gte=now - dt.timedelta(days=7)))
        active_30 = count(users.filter(last_sign_in_at__gte=now - dt.timedelta(days=30)))
        banned = count(users.filter(ban_row__banned_until__gt=now))
        pending = count(
            users.filter(invited_at__isnull=False, email_confirmed_at__isnull=True)
        )
        mfa = count(users.filter(mfa_enabled=True))
        start = _window_start(days)
        signups = _per_day(_app_users(alias), "created_at", start)
        signins, source = signins_per_day(tenant, alias, start)
    except DatabaseError as exc:
        log.warning("Dashboard of tenant %s failed: %s", tenant.slug, exc)
        empty = Figure(None, error="database unreachable")
        return Dashboard(empty, empty, empty, empty, empty, empty, None, days,
                         error="The tenant's database did not answer; try again in a moment.")
    percent = None
    if mfa.value is not None and total.value and not total.error:
        if mfa.exact and total.exact or (mfa.approximate or total.approximate):
            percent = round(100 * min(mfa.value / total.value, 1.0), 1)
    first = start.date()
    series = [
        DayPoint(day, signups.get(day, 0), signins.get(day, 0))
        for day in (first + dt.timedelta(days=i) for i in range(days))
    ]
    return Dashboard(total, active_7, active_30, banned, pending, mfa, percent, days,
                     series=series, signin_source=source)


@dataclass
class OverviewRow:
    tenant: Tenant | ListedTenant
    role: str = ""
    total: Figure | None = None
    active_30: Figure | None = None
    banned: Figure | None = None
    pending_invitations: Figure | None = None
    mfa_percent: float | None = None
    refreshed_at: dt.datetime | None = None
    error: str = ""


def overview_for(
    tenants: Iterable[Tenant | ListedTenant | Mapping[str, str]], *, roles: Mapping[str, str] | None = None
) -> list[OverviewRow]:
    """One row of figures per tenant for the instance home (``templates/tenants/_overview_table.html``).

    ``tenants``: ``figures.ListedTenant`` rows (their figures read already), Tenant objects
    (best with their figures joined: ``figures.with_figures``) or dicts with a ``"slug"``
    (looked up). ``roles``: optional ``{slug: role}`` shown in the row. The figures are the
    stored ones (``tenants.TenantFigures``): no tenant database is opened, whatever the number
    of tenants. Unusable tenants get a row with their status.
    """
    from accounts.app_users.figures import NOT_COUNTED, ListedTenant, stored

    items = list(tenants)
    slugs = [t["slug"] for t in items if isinstance(t, Mapping)]
    by_slug = ({t.slug: t for t in Tenant.objects.filter(slug__in=slugs).select_related("figures")}
               if slugs else {})
    rows = []
    for item in items:
        tenant = by_slug.get(item["slug"]) if isinstance(item, Mapping) else item
        if tenant is None:
            continue
        role = (roles or {}).get(
            tenant.slug, str(item.get("role", "")) if isinstance(item, Mapping) else "")
        if not tenant.is_usable:
            rows.append(OverviewRow(tenant, role, error=tenant.get_status_display().lower()))
            continue
        f = (tenant.figures or NOT_COUNTED) if isinstance(tenant, ListedTenant) else stored(tenant)
        rows.append(OverviewRow(tenant, role, total=f.total, active_30=f.active_30, banned=f.banned,
                                pending_invitations=f.pending_invitations, mfa_percent=f.mfa_percent,
                                refreshed_at=f.refreshed_at, error=f.error))
    return rows
