"""A tenant's dashboard: ``/t/<slug>/`` (every assigned role)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.app_users import stats
from audit.models import AuditEntry
from audit.selectors import present
from console.decorators import tenant_view
from console.http import ConsoleRequest
from core.access import role_can

# Chart geometry (SVG user units): drawn on the server, no script and no inline style.
WIDTH, HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 12, 12, 28
RECENT_ACTIVITY = 10


def _nice_max(value: int) -> int:
    """The smallest 1-2-5 × 10ⁿ at or above ``value`` (at least 4, so the axis reads well)."""
    value = max(value, 4)
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def chart(series: list[stats.DayPoint]) -> dict[str, Any]:
    """Bars for sign-ups, a line for sign-ins, y grid lines and a few x labels."""
    n = len(series) or 1
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    top = _nice_max(max([max(p.signups, p.signins) for p in series] or [0]))
    slot = plot_w / n
    bar_w = max(slot * 0.6, 1)

    def y(v: int) -> float:
        return round(PAD_TOP + plot_h - (v / top) * plot_h, 1)

    bars, points = [], []
    for i, p in enumerate(series):
        x = PAD_LEFT + i * slot
        bars.append({
            "x": round(x + (slot - bar_w) / 2, 1), "y": y(p.signups), "w": round(bar_w, 1),
            "h": round(PAD_TOP + plot_h - y(p.signups), 1), "day": p.day, "signups": p.signups,
            "signins": p.signins,
        })
        points.append(f"{round(x + slot / 2, 1)},{y(p.signins)}")
    grid = [{"y": y(v), "label": f"{v:,}"} for v in (0, top // 2, top)]
    label_at = sorted({0, n // 2, n - 1}) if series else []
    xlabels = []
    for i in label_at:
        # The first and last labels are anchored inwards so that they are never clipped.
        anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
        x = {"start": PAD_LEFT + i * slot, "end": PAD_LEFT + (i + 1) * slot}.get(
            anchor, PAD_LEFT + i * slot + slot / 2)
        xlabels.append({"x": round(x, 1), "anchor": anchor,
                        "text": f"{series[i].day.day} {series[i].day:%b}"})
    return {
        "width": WIDTH, "height": HEIGHT, "bars": bars, "line": " ".join(points),
        "grid": grid, "xlabels": xlabels, "left": PAD_LEFT, "right": WIDTH - PAD_RIGHT,
        "baseline": PAD_TOP + plot_h, "label_y": HEIGHT - 8,
        "total_signups": sum(p.signups for p in series),
        "total_signins": sum(p.signins for p in series),
    }


@require_GET
@tenant_view(action="view_dashboard")
def tenant_dashboard(request: ConsoleRequest) -> HttpResponse:
    tenant = request.tenant
    try:
        days = int(request.GET.get("days", "30"))
    except ValueError:
        days = 30
    board = stats.dashboard(tenant, days=days)
    # Recent admin activity is part of the audit trail: shown to the roles that may read it.
    can_see_audit = role_can(request.tenant_role, "view_audit")
    recent = []
    if can_see_audit:
        entries = (
            AuditEntry.objects.filter(tenant=tenant)
            .select_related("actor", "impersonator", "content_type", "tenant")
            .order_by("-timestamp", "-id")[:RECENT_ACTIVITY]
        )
        recent = [present(e) for e in entries]
    return render(request, "console/dashboard/tenant.html", {
        "board": board, "chart": chart(board.series), "recent": recent,
        "windows": stats.WINDOWS, "can_see_audit": can_see_audit,
    })
