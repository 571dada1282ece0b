"""One user's timeline: admin actions, sign-ins, session starts and ends, factor changes, mails
sent and link uses, merged newest first, in pages, with filters by kind.

Each source is read with its own index (audit ``(object_pk, -timestamp)``, sessions
``(user, ...)``, tokens by user, the outbox by tenant), at most one page plus one row per source,
older than the cursor; the merge keeps the newest ``limit``. The cursor is the time of the last
item shown (items sharing that exact microsecond with it may fall between two pages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accounts.models import ActionToken, AppSession, AppUser
from audit.models import AuditEntry
from core.user_agents import describe as describe_agent
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tenants.models import Tenant

KINDS = {"admin": "Staff actions", "sign_in": "Sign-ins", "session": "Sessions", "factor": "Factors",
         "mail": "Mails", "link": "Links"}
TITLES = {
    "app_user.create": "Created", "app_user.invite": "Invited", "app_user.update": "Profile changed",
    "app_user.ban": "Banned", "app_user.unban": "Unbanned", "app_user.sign_out": "Signed out",
    "app_user.sessions_end": "Sessions ended", "app_user.soft_delete": "Deleted (soft)",
    "app_user.delete": "Deleted", "app_user.email_confirm": "Email confirmed",
    "app_user.factor_remove": "Factor removed", "app_user.factor_removed": "Factor removed",
    "app_user.factor_enrolled": "Factor enrolled", "app_user.recovery_code_used": "Recovery code used",
    "app_user.recovery_sent": "Password recovery sent", "app_user.magic_link_sent": "Magic link sent",
    "app_user.invitation_resend": "Invitation sent again", "app_user.invitation_revoke": "Invitation revoked",
    "app_user.sign_in": "Signed in", "app_user.sign_in_failed": "Sign-in failed",
    "app_user.locked_out": "Locked out", "app_user.password_changed": "Password changed",
    "app_user.profile_updated": "Profile updated", "app_user.refused": "Action refused",
    "impersonation.start": "Impersonation started", "impersonation.end": "Impersonation ended",
    "impersonation.stop": "Impersonation stopped",
}
SIGN_IN = {"app_user.sign_in", "app_user.sign_in_failed", "app_user.locked_out"}
FACTOR = {"app_user.factor_remove", "app_user.factor_removed", "app_user.factor_enrolled",
          "app_user.recovery_code_used"}
SESSION = {"app_user.sign_out", "app_user.sessions_end"}
HIDDEN_DATA = {"app_user", "via", "session", "impersonation"}
EMPTY: tuple[Any, ...] = (None, "", [], {})


@dataclass
class Item:
    at: datetime
    kind: str
    title: str
    actor: str = ""
    detail: str = ""
    code: str = ""  # the audit event, for the curious (shown on hover)
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    facts: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class TimelinePage:
    items: list[Item]
    next_before: datetime | None
    kinds: list[str]


def _audit_kind(entry: AuditEntry) -> str:
    if entry.event in SIGN_IN:
        return "sign_in"
    if entry.event in FACTOR:
        return "factor"
    if entry.event in SESSION:
        return "session"
    return "admin"


def _readable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "—"
    return value


def _from_audit(entry: AuditEntry) -> Item:
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    data = entry.additional_data if isinstance(getattr(entry, "additional_data", None), dict) else {}
    return Item(
        at=entry.timestamp, kind=_audit_kind(entry), title=TITLES.get(entry.event, entry.event), code=entry.event,
        actor=getattr(entry.actor, "email", "") if entry.actor_id else "",
        changes=[(k, _readable(p[0]), _readable(p[1])) for k, p in sorted(changes.items())
                 if isinstance(p, list | tuple) and len(p) == 2 and (p[0] not in EMPTY or p[1] not in EMPTY)],
        facts=[(k.replace("_", " "), _readable(v)) for k, v in sorted(data.items())
               if k not in HIDDEN_DATA and v not in EMPTY and isinstance(k, str)][:8],
    )


def app_user_timeline(*, tenant: Tenant, user: AppUser, kinds: list[str] | None = None,
                      before: datetime | None = None, limit: int = 25) -> TimelinePage:
    alias = tenant_db.using(tenant)
    chosen = [k for k in (kinds or []) if k in KINDS] or list(KINDS)
    take = limit + 1
    items: list[Item] = []
    audit_kinds = {"admin", "sign_in", "session", "factor"} & set(chosen)
    if audit_kinds:
        qs = AuditEntry.objects.filter(tenant=tenant, object_pk=str(user.pk)).select_related("actor")
        if before is not None:
            qs = qs.filter(timestamp__lt=before)
        entries = [_from_audit(e) for e in qs.order_by("-timestamp")[: take * 2]]
        items += [i for i in entries if i.kind in audit_kinds][:take]
    if "session" in chosen:
        sessions = AppSession.objects.using(alias).filter(user=user)
        starts = sessions.filter(created_at__lt=before) if before else sessions
        for s in starts.order_by("-created_at")[:take]:
            items.append(Item(at=s.created_at, kind="session", title="Session started",
                              detail=f"{describe_agent(s.user_agent)} · {s.ip_address or 'unknown address'}"
                              + (" · impersonation" if s.impersonator_id else "")))
        ends = sessions.exclude(revoked_at=None)
        if before:
            ends = ends.filter(revoked_at__lt=before)
        for s in ends.order_by("-revoked_at")[:take]:
            items.append(Item(at=s.revoked_at, kind="session", title="Session ended",  # type: ignore[arg-type]
                              detail=describe_agent(s.user_agent)))
    if "link" in chosen:
        used = ActionToken.objects.using(alias).filter(user=user).exclude(used_at=None)
        if before:
            used = used.filter(used_at__lt=before)
        for t in used.order_by("-used_at")[:take]:
            items.append(Item(at=t.used_at, kind="link", title=f"{t.get_purpose_display()} link used"))  # type: ignore[arg-type]
    if "mail" in chosen and user.email:
        mails = OutboxMessage.objects.filter(tenant=tenant, to=user.email)
        if before:
            mails = mails.filter(created_at__lt=before)
        for m in mails.order_by("-created_at")[:take]:
            items.append(Item(at=m.created_at, kind="mail", title=f"Mail: {m.subject}",
                              detail=m.get_status_display()))
    items.sort(key=lambda i: i.at, reverse=True)
    page = items[:limit]
    return TimelinePage(items=page, next_before=page[-1].at if len(items) > limit else None, kinds=chosen)
