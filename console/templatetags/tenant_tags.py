"""The rows of the instance pages' tenant lists, rendered in Python (as ``app_user_tags``).

The console home (tiles and the "Users per tenant" table) and ``/tenants/`` show a page of
tenants: 24 tiles, 50 rows. Through the template engine each row cost about 0.7 ms (an include,
``{% url %}`` reversed per row, a dozen variable lookups, the date filters), so a full page took
twice what a page of ten did; here a row costs a few string formats, and the URLs are reversed
once per page, the dates by one ``Clock``. Every dynamic value goes through ``escape`` (the
standard library's: Django's is wrapped for lazy strings, which cost more than the rest).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from html import escape
from typing import Any

from django import template
from django.urls import reverse
from django.utils import formats
from django.utils.safestring import SafeString, mark_safe

from core.templatetags.when import Clock
from tenants.models import Tenant

register = template.Library()

_SLUG = "__slug__"  # a placeholder the slug converter accepts; slugs themselves have no "_"


def slug_url(name: str) -> Callable[[str], str]:
    """``reverse(name, args=[slug])`` for many slugs, reversed once: ``slug -> escaped URL``."""
    head, tail = escape(reverse(name, args=[_SLUG])).split(_SLUG, 1)
    return lambda slug: f"{head}{escape(slug)}{tail}"


_STATUS_BADGES: dict[str, str] = {
    Tenant.Status.ACTIVE: '<span class="badge badge-success">Active</span>',
    Tenant.Status.SUSPENDED: '<span class="badge badge-warning">Suspended</span>',
    Tenant.Status.PROVISIONING: '<span class="badge badge-info">Provisioning</span>',
    Tenant.Status.FAILED: '<span class="badge badge-danger">Failed</span>',
    Tenant.Status.DELETED: '<span class="badge badge-danger">Deleted</span>',
}
_ROLE_BADGES = {"admin": "badge-primary", "support": "badge-info"}


def _sub(t: Any, note: str) -> str:
    """The line under a tenant's name: its slug, a note, and whether it is suspended."""
    suspended = ' · <span class="badge badge-warning">suspended</span>' if t.status == Tenant.Status.SUSPENDED else ""
    return f"<code>{escape(t.slug)}</code>{note}{suspended}"


def status_badge(tenant: Tenant) -> str:
    badge = _STATUS_BADGES.get(tenant.status)
    return badge or f'<span class="badge">{escape(tenant.get_status_display())}</span>'


@register.simple_tag
def tenant_status(tenant: Tenant) -> SafeString:
    """The tenant's status as a badge (active, suspended, provisioning, failed, deleted, …)."""
    return mark_safe(status_badge(tenant))  # noqa: S308 - the display name is escaped


def _display(figure: Any) -> str:
    return escape(figure.display) if figure is not None else ""


def _percent(value: float | None) -> str:
    return f"{formats.localize(value)}%" if value is not None else "—"


def _iso(value: datetime | None, clock: Clock) -> str:
    """``{{ value|date:'c' }}``: ISO 8601 in the current time zone."""
    return clock.local(value).isoformat() if value is not None else ""


@register.simple_tag
def tenant_tiles(memberships: Iterable[Any]) -> SafeString:
    """The console home's tiles: one link per ``Membership`` (tenant and my role in it)."""
    users = slug_url("console:users-list")
    out = []
    for m in memberships:
        t = m.tenant
        out.append(
            f'<a class="card tenant-tile" href="{users(t.slug)}" data-tenant="{escape(t.slug)}">'
            f'<div class="tile-head"><h3>{escape(t.name)}</h3>'
            f'<span class="badge {_ROLE_BADGES.get(m.role, "badge-plain")}">{escape(m.role)}</span></div>'
            f'<div class="muted small">{_sub(t, " · default" if t.is_default else "")}</div></a>'
        )
    return mark_safe("\n".join(out))  # noqa: S308 - every dynamic part is escaped above


@register.simple_tag
def overview_rows(rows: Iterable[Any]) -> SafeString:
    """The ``<tr>`` of the home's "Users per tenant" table (``OverviewRow``: stored figures)."""
    dashboard = slug_url("console:tenant-dashboard")
    out = []
    for row in rows:
        t, usable = row.tenant, row.tenant.is_usable
        name = escape(t.name)
        head = (f'<a class="cell-primary" href="{dashboard(t.slug)}">{name}</a>' if usable
                else f'<span class="cell-primary">{name}</span>')
        sub = _sub(t, f" · {escape(row.role)}" if row.role else "")
        cells = [f'<td>{head}<div class="cell-sub">{sub}</div></td>']
        if row.error:
            error = escape(row.error)
            if usable and row.error == "database unreachable":
                error = f'<span class="badge badge-danger">{error}</span>'
            cells.append(f'<td colspan="5" class="muted">{error}</td>')
        else:
            cells.extend(f'<td class="num">{_display(f)}</td>'
                         for f in (row.total, row.active_30, row.banned, row.pending_invitations))
            cells.append(f'<td class="num">{_percent(row.mfa_percent)}</td>')
        out.append(f'<tr data-slug="{escape(t.slug)}">{"".join(cells)}</tr>')
    return mark_safe("\n".join(out))  # noqa: S308 - every dynamic part is escaped above


def _figure_cells(t: Tenant, f: Any, clock: Clock) -> str:
    usable = t.is_usable
    if f.error == "database unreachable" and usable:
        return (f'<td class="num" colspan="6"><span class="badge badge-danger badge-plain" '
                f'title="{escape(f.error)}">unreachable</span></td>')
    if f.error and usable:
        return f'<td class="num" colspan="6"><span class="muted small">{escape(f.error)}</span></td>'
    if not usable or not f.total:
        return '<td class="num" colspan="6"><span class="muted">—</span></td>'
    return (f'<td class="num" title="counted {_iso(f.refreshed_at, clock)}">{_display(f.total)}</td>'
            + "".join(f'<td class="num">{_display(x)}</td>'
                      for x in (f.active_7, f.active_30, f.banned, f.pending_invitations))
            + f'<td class="num">{_percent(f.mfa_percent)}</td>')


@register.simple_tag
def tenant_rows(rows: Iterable[dict[str, Any]]) -> SafeString:
    """The ``<tr>`` of ``/tenants/``: each ``{"tenant", "figures" (stored), "behind"}``."""
    detail = slug_url("console:tenants-detail")
    clock = Clock()
    out = []
    for row in rows:
        t = row["tenant"]
        slug = escape(t.slug)
        if t.status == Tenant.Status.PURGED:
            schema = '<span class="muted">—</span>'
        elif row["behind"]:
            schema = '<span class="badge badge-warning">Behind</span>'
        else:
            schema = '<span class="badge badge-success badge-plain">Current</span>'
        out.append(
            f'<tr data-slug="{slug}">'
            f'<td><a class="cell-primary" href="{detail(t.slug)}">{escape(t.name)}</a>'
            f'<div class="cell-sub"><code>{slug}</code>{" · default" if t.is_default else ""}</div></td>'
            f"<td>{status_badge(t)}</td>"
            f"{_figure_cells(t, row['figures'], clock)}"
            f'<td><span class="cell-primary mono">{escape(t.db_name)}</span>'
            f'<div class="cell-sub">server <code>{escape(t.db_server)}</code></div></td>'
            f"<td>{schema}</td>"
            f'<td class="nowrap" title="{_iso(t.created_at, clock)}">{clock.when_date(t.created_at)}</td>'
            "</tr>"
        )
    return mark_safe("\n".join(out))  # noqa: S308 - every dynamic part is escaped above
