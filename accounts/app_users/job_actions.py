"""Batch actions as a job runs them: chunk by chunk, on a frozen snapshot, with each user's
outcome written beside the change (``batchjobs.engine`` drives it; ``batches.app_users_batch`` is
the in-request path of the same actions).

For every action: the rules that skip a user (the same rule as SQL, for the preview's frozen
snapshot, and in Python, to check each user again when its chunk runs), the change itself in
bulk statements on one chunk, the audited fields before it, its audit entry and its mail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from accounts.app_users.batches import _EVENTS as BATCH_EVENTS
from accounts.app_users.selectors import light_rows, status_q
from accounts.app_users.services import AUDIT_FIELDS, deleted_email, end_sessions, link_mail, soft_delete_ids
from accounts.models import BANNED_FOREVER, ActionToken, AppUser
from accounts.tokens import token_issue_many, tokens_revoke_for_user
from audit import services as audit
from core import pgcopy
from core.access import TenantRole
from core.emails import canonical_email
from outbox.services import Mail
from tenants.access import actor_role
from tenants.config import TenantSettings, tenant_settings
from tenants.models import Tenant

# action -> the permission of core.access.MATRIX it needs
ACTIONS: dict[str, str] = {
    "ban": "ban_user",
    "unban": "unban_user",
    "send_recovery": "send_recovery",
    "send_magic_link": "send_magic_link",
    "sign_out": "sign_out_user",
    "resend_invitation": "resend_invitation",
    "delete": "delete_user",
    "hard_delete": "delete_user",
    "change_role": "change_role",
    "confirm_email": "confirm_email",
}
LABELS: dict[str, str] = {
    "ban": "Ban",
    "unban": "Unban",
    "send_recovery": "Send password recovery",
    "send_magic_link": "Send magic link",
    "sign_out": "Sign out everywhere",
    "resend_invitation": "Resend invitation",
    "delete": "Delete",
    "hard_delete": "Delete permanently",
    "change_role": "Change role",
    "confirm_email": "Confirm email",
    "undo": "Undo",
}
DESTRUCTIVE = frozenset({"ban", "delete", "hard_delete", "change_role"})
UNDOABLE = frozenset({"ban", "unban", "change_role"})
LINK_PURPOSES = {
    "send_recovery": ActionToken.Purpose.RECOVERY,
    "send_magic_link": ActionToken.Purpose.MAGIC_LINK,
    "resend_invitation": ActionToken.Purpose.INVITE,
}
EVENTS: dict[str, str] = {
    **BATCH_EVENTS,
    "send_magic_link": "app_user.magic_link_sent",
    "hard_delete": "app_user.delete",
    "change_role": "app_user.update",
    "confirm_email": "app_user.email_confirm",
    "undo": "app_user.undo",
}
# What each action changes: the fields kept as "before" (for the audit diff and for an undo).
BEFORE_FIELDS: dict[str, tuple[str, ...]] = {
    "ban": ("banned_until", "ban_reason"),
    "unban": ("banned_until", "ban_reason"),
    "change_role": ("role",),
    "confirm_email": ("email_confirmed_at",),
    "delete": tuple(f for f in AUDIT_FIELDS if f not in {"user_metadata", "app_metadata"}),
    "hard_delete": tuple(f for f in AUDIT_FIELDS if f not in {"user_metadata", "app_metadata"}),
}
# Actions whose change writes the user's row (and so moves its updated_at).
TOUCHES_ROW = frozenset({"ban", "unban", "change_role", "confirm_email", "delete", "undo"})
LOAD_FIELDS = (
    "id", "email", "name", "role", "password", "email_confirmed_at", "invited_at", "banned_until",
    "ban_reason", "deleted_at", "mfa_enabled", "updated_at",
)
CHANGED = ("changed", "Changed since the preview: not acted on.")
GONE = ("gone", "No longer exists.")
CHANGED_SINCE_JOB = ("changed", "Changed since the job: left as it is.")


@dataclass(frozen=True)
class Rule:
    """A reason to skip a user: as a condition on the table (``q``) and on a loaded row."""

    code: str
    reason: str
    q: Q
    applies: Callable[[AppUser], bool]


def _banned(user: AppUser, now: datetime) -> bool:
    return user.banned_until is not None and user.banned_until > now


def _invited(user: AppUser) -> bool:
    return (user.deleted_at is None and not (user.banned_until and user.banned_until > timezone.now())
            and user.email_confirmed_at is None and user.invited_at is not None and not user.password)


def rules(action: str, *, actor: Any, tenant: Tenant, options: dict[str, Any], now: datetime,
          settings: TenantSettings | None = None) -> list[Rule]:
    """Why a user is skipped, first match wins: deleted, yourself, a protected role the actor
    may not touch, then what the action does not apply to (already banned, not banned, ...)."""
    settings = settings or tenant_settings(tenant)
    out: list[Rule] = []
    if action != "hard_delete":
        out.append(Rule("deleted", "Already deleted.", Q(deleted_at__isnull=False),
                        lambda u: u.deleted_at is not None))
    email = canonical_email(getattr(actor, "email", "") or "")
    if email:
        out.append(Rule("self_action", "Carries your own email address: you cannot act on yourself.",
                        Q(email=email), lambda u: canonical_email(u.email) == email))
    protected = tuple(settings.protected_roles)
    if protected and actor_role(actor, tenant) != TenantRole.ADMIN:
        out.append(Rule("protected_user", "Has a protected role: only a tenant admin may change it.",
                        Q(role__in=protected), lambda u: u.role in protected))
    if action == "ban":
        out.append(Rule("already_banned", "Already banned.", Q(banned_until__gt=now),
                        lambda u: _banned(u, now)))
    elif action == "unban":
        out.append(Rule("not_banned", "Not banned.", Q(banned_until__isnull=True),
                        lambda u: u.banned_until is None))
    elif action in ("send_recovery", "send_magic_link"):
        out.append(Rule("banned", "Banned: unban first.", Q(banned_until__gt=now), lambda u: _banned(u, now)))
    elif action == "resend_invitation":
        out.append(Rule("not_invited", "Not a pending invitation.", ~status_q("invited", now=now),
                        lambda u: not _invited(u)))
    elif action == "confirm_email":
        out.append(Rule("already_confirmed", "Email already confirmed.", Q(email_confirmed_at__isnull=False),
                        lambda u: u.email_confirmed_at is not None))
    elif action == "change_role":
        role = options["role"]
        out.append(Rule("same_role", f"Already has the role {role}.", Q(role=role), lambda u: u.role == role))
    return out


def load(alias: str, user_ids: Iterable[Any]) -> dict[Any, AppUser]:
    """The chunk's users, locked until the chunk's transaction ends."""
    out: dict[Any, AppUser] = {}
    for chunk in pgcopy.id_chunks(list(user_ids), alias):
        qs = AppUser.objects.using(alias).select_for_update().filter(pk__any=chunk)
        out.update((u.pk, u) for u in light_rows(qs, LOAD_FIELDS, alias))
    return out


def load_plain(alias: str, user_ids: Iterable[Any]) -> list[AppUser]:
    """These users as the preview checks them (not locked)."""
    qs = AppUser.objects.using(alias).filter(pk__in=list(user_ids))
    return light_rows(qs, (*LOAD_FIELDS, "created_at"), alias)


def before(action: str, user: AppUser) -> dict[str, Any] | None:
    fields = BEFORE_FIELDS.get(action)
    return audit.snapshot(user, fields) if fields else None


def parse_until(options: dict[str, Any]) -> datetime:
    until = datetime.fromisoformat(options["until"])
    return min(until, BANNED_FOREVER)


def apply(action: str, *, alias: str, tenant: Tenant, users: Sequence[AppUser], now: datetime,
          options: dict[str, Any], actor: Any) -> dict[Any, str]:
    """Do ``action`` to these users (one chunk) with bulk statements, in the caller's
    transaction on the tenant database. Returns the raw link token of each user for the link
    actions (stored with the outcome until the mail carrying it is in the outbox)."""
    ids = [u.pk for u in users]
    if not ids:
        return {}
    manager = AppUser.objects.using(alias)
    if action == "ban":
        for chunk in pgcopy.id_chunks(ids, alias):
            manager.filter(pk__any=chunk).update(banned_until=parse_until(options),
                                                 ban_reason=options.get("reason", ""), updated_at=now)
        tokens_revoke_for_user(tenant=tenant, user_ids=ids,
                               purposes=[ActionToken.Purpose.RECOVERY, ActionToken.Purpose.MAGIC_LINK])
        end_sessions(alias, ids, now=now)
    elif action == "unban":
        manager.filter(pk__in=ids).update(banned_until=None, ban_reason="", updated_at=now)
    elif action == "change_role":
        manager.filter(pk__in=ids).update(role=options["role"], updated_at=now)
    elif action == "confirm_email":
        manager.filter(pk__in=ids).update(email_confirmed_at=now, updated_at=now)
    elif action == "sign_out":
        end_sessions(alias, ids, now=now)
    elif action == "delete":
        soft_delete_ids(alias, ids, now=now)
    elif action == "hard_delete":
        manager.filter(pk__in=ids).delete()
    elif action in LINK_PURPOSES:
        raws = token_issue_many(tenant=tenant, user_ids=ids, purpose=LINK_PURPOSES[action], created_by=actor)
        if action == "send_recovery" and options.get("sign_out"):
            end_sessions(alias, ids, now=now)
        return raws
    else:
        raise ValueError(f"unknown job action {action!r}")
    return {}


def after(action: str, *, before: dict[str, Any] | None, user_pk: Any, options: dict[str, Any],
          at: datetime | None) -> dict[str, Any] | None:
    """The audited fields after the change (``before``'s counterpart), for the diff."""
    if before is None:
        return None
    if action == "ban":
        return {"banned_until": parse_until(options), "ban_reason": options.get("reason", "")}
    if action == "unban":
        return {"banned_until": None, "ban_reason": ""}
    if action == "change_role":
        return {"role": options["role"]}
    if action == "confirm_email":
        return {"email_confirmed_at": at}
    if action == "delete":
        return {**before, "email": deleted_email(user_pk), "name": "", "mfa_enabled": False,
                "banned_until": None, "ban_reason": "", "deleted_at": at}
    return None


def audit_entry(action: str, *, user_pk: Any, email: str, before: dict[str, Any] | None,
                options: dict[str, Any], at: datetime | None, data: dict[str, Any],
                diffs: dict[Any, Any] | None = None) -> audit.Entry:
    """The entry of one user's change. ``diffs`` (a dict kept across a chunk) shares one diff
    between the users whose prior state was the same, for the actions whose "after" does not
    depend on the user (ban, unban, role change, confirmation)."""
    if action == "hard_delete":
        return audit.Entry(event=EVENTS[action], target_model=AppUser, target_pk=user_pk, target_repr=email,
                           action=audit.DELETE, changes=audit.diff(before, None), data={**data, "hard": True})
    key = None
    if diffs is not None and action in ("ban", "unban", "change_role", "confirm_email"):
        key = (json.dumps(before, sort_keys=True, default=str), at)
    if diffs is not None and key is not None and key in diffs:
        changes = diffs[key]
    else:
        changes = audit.diff(before, after(action, before=before, user_pk=user_pk, options=options, at=at))
        if diffs is not None and key is not None:
            diffs[key] = changes
    extra: dict[str, Any] = {}
    if action == "send_recovery":
        extra["signed_out"] = bool(options.get("sign_out"))
    return audit.Entry(event=EVENTS[action], target_model=AppUser, target_pk=user_pk, target_repr=email,
                       changes=changes or None, data={**data, **extra} if extra else data)


def mail(action: str, *, tenant: Tenant, settings: TenantSettings, key: str, user_pk: Any, email: str,
         name: str, raw: str) -> Mail | None:
    purpose = LINK_PURPOSES.get(action)
    if purpose is None or not raw:
        return None
    message = link_mail(tenant=tenant, settings=settings, user_pk=user_pk, email=email, name=name,
                        purpose=purpose, raw=raw)
    return replace(message, key=key)


# --- Undo ---------------------------------------------------------------------------------------


def _restored_value(field: str, value: Any) -> Any:
    if field == "banned_until" and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def undo_apply(*, alias: str, users: Sequence[tuple[AppUser, dict[str, Any]]], now: datetime) -> None:
    """Put each user back to its ``restore`` state (the ``before`` of the undone job), grouped
    so that users with the same prior state take one statement."""
    groups: dict[tuple, list[Any]] = {}
    for user, restore in users:
        key = tuple(sorted((k, str(v)) for k, v in restore.items()))
        groups.setdefault(key, [restore]).append(user.pk)
    for members in groups.values():
        restore, ids = members[0], members[1:]
        values = {k: _restored_value(k, v) for k, v in restore.items()}
        AppUser.objects.using(alias).filter(pk__in=ids).update(**values, updated_at=now)


def undo_entry(*, user_pk: Any, email: str, before: dict[str, Any] | None, restore: dict[str, Any],
               data: dict[str, Any]) -> audit.Entry:
    return audit.Entry(event=EVENTS["undo"], target_model=AppUser, target_pk=user_pk, target_repr=email,
                       changes=audit.diff(before, restore) or None, data=data)
