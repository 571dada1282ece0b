"""Batch actions on many app users: ban, unban, send recovery, sign out, resend invitation,
(soft) delete; and inviting many (the CSV import).

Each batch loads its users once (by ids, or by the list's filter for "all N matching", never
more than ``policy().batch_max_users``), checks every user on its own (refused → ``errors``,
not applicable → ``skipped``), then applies the rest with bulk statements and writes the audit
entries with one bulk insert: a failing user never undoes the others, and no ``save()`` loop.
The result has Supamode's shape: ``{success, processed, skipped, errors[]}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from accounts.app_users.permissions import app_user_refusal
from accounts.app_users.selectors import (
    UserFilters,
    app_user_matching,
    app_user_matching_count,
    light_rows,
)
from accounts.app_users.services import (
    AUDIT_FIELDS,
    NO_SUCH_USER,
    atomic_both,
    audited_refusals,
    clean_email,
    clean_name,
    clean_reason,
    clean_role,
    end_sessions,
    link_mail,
    role_refused,
    soft_delete_ids,
)
from accounts.models import BANNED_FOREVER, ActionToken, AppUser
from accounts.tokens import token_issue_many, tokens_revoke_for_user
from audit import services as audit
from core import pgcopy
from core.access import role_can
from core.csv_safety import starts_formula
from core.errors import Invalid, ServiceError
from core.policy import policy
from outbox.services import Mail, mail_enqueue_many
from tenants import db as tenant_db
from tenants.access import actor_role
from tenants.config import tenant_settings
from tenants.models import Tenant

CHUNK = 900  # ids per statement: under SQLite's historical 999-parameter limit
REPORT_LIMIT = 500  # errors and skipped users listed one by one (the counts are always exact)

ACTIONS: dict[str, str] = {  # batch action -> permission
    "ban": "ban_user",
    "unban": "unban_user",
    "send_recovery": "send_recovery",
    "sign_out": "sign_out_user",
    "resend_invitation": "resend_invitation",
    "delete": "delete_user",
}
DESTRUCTIVE = frozenset({"ban", "delete"})
_CHARACTER_NAMES = {"\t": "a tab", "\r": "a carriage return"}


@dataclass
class BatchItem:
    user_id: str
    email: str
    error: str


@dataclass
class BatchResult:
    action: str
    processed: int = 0
    skipped: int = 0
    errors: list[BatchItem] = field(default_factory=list)
    skipped_items: list[BatchItem] = field(default_factory=list)
    error_count: int = 0

    @property
    def success(self) -> bool:
        return self.error_count == 0

    @property
    def total(self) -> int:
        return self.processed + self.skipped + self.error_count

    def error(self, user_id: Any, email: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < REPORT_LIMIT:
            self.errors.append(BatchItem(str(user_id), email, message))

    def skip(self, user_id: Any, email: str, message: str) -> None:
        self.skipped += 1
        if len(self.skipped_items) < REPORT_LIMIT:
            self.skipped_items.append(BatchItem(str(user_id), email, message))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["success"] = self.success
        return data


@dataclass(frozen=True)
class Selection:
    """Either explicit ids (checked rows) or the list's filter ("all N matching this search")."""

    ids: tuple[str, ...] = ()
    filters: UserFilters | None = None

    def describe(self) -> dict[str, Any]:
        if self.filters is not None:
            return {"scope": "filter", "filter": self.filters.as_params()}
        return {"scope": "ids", "count": len(self.ids)}


def _chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


_LOAD_FIELDS = (
    "id", "email", "name", "role", "password", "email_confirmed_at", "invited_at",
    "banned_until", "ban_reason", "deleted_at", "mfa_enabled",
)


def selection_count(*, tenant: Tenant, selection: Selection) -> int:
    """How many users a batch would touch, capped at ``batch_max_users + 1``."""
    cap = policy().batch_max_users
    if selection.filters is None:
        return len(selection.ids)
    return app_user_matching_count(tenant=tenant, filters=selection.filters, cap=cap)


def _load(alias: str, tenant: Tenant, selection: Selection, result: BatchResult) -> list[AppUser]:
    cap = policy().batch_max_users
    if selection.filters is not None:
        users = app_user_matching(
            tenant=tenant, filters=selection.filters, fields=_LOAD_FIELDS, limit=cap + 1, lock=True
        )
        if len(users) > cap:
            raise Invalid(
                f"This selection holds more than {cap:,} users; one batch acts on at most "
                f"{cap:,}. Narrow the search or the filters and run it in parts.",
                code="batch_too_large",
            )
        return users
    ids = list(dict.fromkeys(str(i) for i in selection.ids))
    if len(ids) > cap:
        raise Invalid(f"One batch acts on at most {cap:,} users ({len(ids):,} selected).",
                      code="batch_too_large")
    valid: list[uuid.UUID] = []
    for raw in ids:
        try:
            valid.append(uuid.UUID(raw))
        except ValueError:
            result.error(raw, "", NO_SUCH_USER)
    found_users: list[AppUser] = []
    for chunk in pgcopy.id_chunks(valid, alias):
        found_users.extend(light_rows(
            AppUser.objects.using(alias).select_for_update().filter(pk__any=chunk), _LOAD_FIELDS, alias
        ))
    found = {u.pk for u in found_users}
    for pk in valid:
        if pk not in found:
            result.error(pk, "", NO_SUCH_USER)
    return found_users


def _skip_reason(action: str, user: AppUser) -> str | None:
    if user.deleted_at is not None:
        return "Already deleted."
    if action == "unban" and user.banned_until is None:
        return "Not banned."
    if action == "send_recovery" and user.is_banned:
        return "Banned: unban first."
    if action == "resend_invitation" and user.status != "invited":
        return "Not a pending invitation."
    return None


def _apply_ban(alias, tenant, users, now, options) -> dict[str, Any]:
    until: datetime = options["until"]
    reason: str = options.get("reason", "")
    ids = [u.pk for u in users]
    for chunk in pgcopy.id_chunks(ids, alias):
        AppUser.objects.using(alias).filter(pk__any=chunk, deleted_at__isnull=True).update(
            banned_until=until, ban_reason=reason, updated_at=now
        )
        tokens_revoke_for_user(
            tenant=tenant, user_ids=chunk,
            purposes=[ActionToken.Purpose.RECOVERY, ActionToken.Purpose.MAGIC_LINK],
        )
    ended = end_sessions(alias, ids, now=now)
    return {"sessions_ended": ended, "indefinitely": until >= BANNED_FOREVER}


def _apply_unban(alias, tenant, users, now, options) -> dict[str, Any]:
    for chunk in pgcopy.id_chunks([u.pk for u in users], alias):
        AppUser.objects.using(alias).filter(pk__any=chunk).update(
            banned_until=None, ban_reason="", updated_at=now
        )
    return {}


def _apply_links(purpose: str):
    def apply(alias, tenant, users, now, options, *, actor=None) -> dict[str, Any]:
        settings = tenant_settings(tenant)
        mails: list[Mail] = []
        for chunk in _chunks(users):
            raws = token_issue_many(
                tenant=tenant, user_ids=[u.pk for u in chunk], purpose=purpose, created_by=actor
            )
            mails.extend(
                link_mail(tenant=tenant, settings=settings, user_pk=u.pk, email=u.email,
                          name=u.name, purpose=purpose, raw=raws[u.pk])
                for u in chunk
            )
        mail_enqueue_many(mails, tenant=tenant)
        ended = end_sessions(alias, [u.pk for u in users], now=now) if options.get("sign_out") else 0
        return {"mails": len(mails), "sessions_ended": ended}

    return apply


def _apply_sign_out(alias, tenant, users, now, options) -> dict[str, Any]:
    return {"sessions_ended": end_sessions(alias, [u.pk for u in users], now=now)}


def _apply_delete(alias, tenant, users, now, options) -> dict[str, Any]:
    soft_delete_ids(alias, [u.pk for u in users], now=now)
    return {}


_APPLY: dict[str, Callable] = {
    "ban": _apply_ban,
    "unban": _apply_unban,
    "send_recovery": _apply_links(ActionToken.Purpose.RECOVERY),
    "sign_out": _apply_sign_out,
    "resend_invitation": _apply_links(ActionToken.Purpose.INVITE),
    "delete": _apply_delete,
}
_EVENTS = {
    "ban": "app_user.ban",
    "unban": "app_user.unban",
    "send_recovery": "app_user.recovery_sent",
    "sign_out": "app_user.sign_out",
    "resend_invitation": "app_user.invitation_resend",
    "delete": "app_user.soft_delete",
}


def _changes(action: str, user: AppUser, now: datetime, options: dict) -> dict | None:
    if action == "ban":
        return audit.diff(
            {"banned_until": user.banned_until, "ban_reason": user.ban_reason},
            {"banned_until": options["until"], "ban_reason": options.get("reason", "")},
        )
    if action == "unban":
        return audit.diff({"banned_until": user.banned_until, "ban_reason": user.ban_reason},
                          {"banned_until": None, "ban_reason": ""})
    if action == "delete":
        before = audit.snapshot(user, [f for f in AUDIT_FIELDS if f in _LOAD_FIELDS])
        return audit.diff(before, {**before, "email": f"deleted-{user.pk.hex}@deleted.invalid",
                                   "name": "", "mfa_enabled": False, "banned_until": None,
                                   "ban_reason": "", "deleted_at": now})
    return None


@audited_refusals
def app_users_batch(
    *, actor, tenant: Tenant, action: str, selection: Selection, until: datetime | None = None,
    reason: str = "", sign_out: bool = False,
) -> BatchResult:
    """Run one batch action. Raises ``Refused`` (code ``role``) when the actor's role does not
    allow the action at all, ``Invalid`` (``batch_too_large``) beyond the policy's cap; per-user
    problems are reported in the result."""
    if action not in ACTIONS:
        raise Invalid("Unknown batch action.", code="unknown_action", field="action")
    permission = ACTIONS[action]
    if not role_can(actor_role(actor, tenant), permission):
        raise role_refused(permission, target_repr="batch")
    options: dict[str, Any] = {"sign_out": sign_out}
    now = timezone.now()
    if action == "ban":
        if until is None or until <= now:
            raise Invalid("Choose a ban duration that ends in the future.", code="in_past", field="until")
        options.update(until=min(until, BANNED_FOREVER), reason=clean_reason(reason))
    alias = tenant_db.using(tenant)
    protected = frozenset(tenant_settings(tenant).protected_roles)
    result = BatchResult(action=action)
    with atomic_both(alias):
        users = _load(alias, tenant, selection, result)
        ready: list[AppUser] = []
        for user in users:
            refusal = app_user_refusal(
                actor, tenant, permission, target_role=user.role, target_email=user.email,
                protected_roles=protected,
            )
            if refusal is not None:
                result.error(user.pk, user.email, refusal.message)
                continue
            skip = _skip_reason(action, user)
            if skip is not None:
                result.skip(user.pk, user.email, skip)
                continue
            ready.append(user)
        apply = _APPLY[action]
        facts: dict[str, Any] = {}
        if ready:
            if action in ("send_recovery", "resend_invitation"):
                facts = apply(alias, tenant, ready, now, options, actor=actor)
            else:
                facts = apply(alias, tenant, ready, now, options)
        result.processed = len(ready)
        batch_id = uuid.uuid4().hex
        # A ban's or an unban's diff depends on the prior ban only: one diff per prior state.
        diffs: dict[tuple, dict | None] = {}

        def changes(u: AppUser) -> dict | None:
            if action not in ("ban", "unban"):
                return _changes(action, u, now, options)
            key = (u.banned_until, u.ban_reason)
            if key not in diffs:
                diffs[key] = _changes(action, u, now, options)
            return diffs[key]

        data = {"batch": batch_id}  # one object for all: stored, hashed and dumped once
        entries = [
            audit.Entry(
                event=_EVENTS[action], target_model=AppUser, target_pk=u.pk, target_repr=u.email,
                changes=changes(u), data=data,
            )
            for u in ready
        ]
        entries.append(
            audit.Entry(
                event=f"app_user.batch_{action}", target_model=AppUser, target_pk="",
                target_repr=f"batch of {result.total} users",
                data={
                    "batch": batch_id, **selection.describe(), "processed": result.processed,
                    "skipped": result.skipped, "errors": result.error_count,
                    "error_items": [asdict(e) for e in result.errors[:50]], **facts,
                    **({"until": options["until"], "reason": options["reason"]} if action == "ban" else {}),
                },
            )
        )
        audit.record_many(entries, actor=actor, tenant=tenant)
    return result


# --- Inviting many (the CSV import) -----------------------------------------------------------


@dataclass
class InviteRow:
    line: int
    email: str
    name: str = ""
    role: str = ""
    error: str = ""
    skip: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.skip


def invite_rows_check(*, actor, tenant: Tenant, rows: list[InviteRow]) -> list[InviteRow]:
    """Validate each row on its own (syntax, domain, role, protected role, own email), mark
    duplicates in the file and addresses that already exist (to skip: importing the same file
    twice invites nobody twice). Changes nothing."""
    settings = tenant_settings(tenant)
    protected = frozenset(settings.protected_roles)
    seen: set[str] = set()
    for row in rows:
        row.error = row.skip = ""
        formula = next(
            (label for label, value in (("email", row.email), ("name", row.name), ("role", row.role))
             if starts_formula(value)),
            None,
        )
        if formula is not None:
            first = getattr(row, formula).lstrip(" ")[0]
            shown = _CHARACTER_NAMES.get(first, f"“{first}”")
            row.error = f"The {formula} starts with {shown}, which spreadsheets run as a formula."
            continue
        try:
            row.email = clean_email(row.email, tenant=tenant, settings=settings)
            row.name = clean_name(row.name)
            row.role = clean_role(row.role, tenant=tenant, settings=settings)
        except ServiceError as exc:
            row.error = exc.message
            continue
        refusal = app_user_refusal(actor, tenant, "invite_user", target_role=row.role,
                                   target_email=row.email, protected_roles=protected)
        if refusal is not None:
            row.error = refusal.message
        elif row.email in seen:
            row.skip = "Appears earlier in the file."
        seen.add(row.email)
    candidates = [r.email for r in rows if r.ok]
    existing: set[str] = set()
    alias = tenant_db.using(tenant)
    for chunk in _chunks(candidates):
        existing.update(
            AppUser.objects.using(alias).filter(email__in=chunk).values_list("email", flat=True)
        )
    for row in rows:
        if row.ok and row.email in existing:
            row.skip = "Already a user of this tenant."
    return rows


@audited_refusals
def app_users_invite_many(*, actor, tenant: Tenant, rows: list[InviteRow]) -> BatchResult:
    """Invite every valid, new row in bulk (one insert, one token insert, one mail insert, one
    audit insert). Rows are checked again here: what changed since the preview is reported."""
    if not role_can(actor_role(actor, tenant), "import_users"):
        raise role_refused("import_users", target_repr="import")
    cap = policy().batch_max_users
    if len(rows) > cap:
        raise Invalid(f"One import invites at most {cap:,} users ({len(rows):,} rows).",
                      code="batch_too_large")
    alias = tenant_db.using(tenant)
    settings = tenant_settings(tenant)
    result = BatchResult(action="invite")
    now = timezone.now()
    with atomic_both(alias):
        invite_rows_check(actor=actor, tenant=tenant, rows=rows)
        users = []
        for row in rows:
            if row.error:
                result.error(f"line {row.line}", row.email, row.error)
            elif row.skip:
                result.skip(f"line {row.line}", row.email, row.skip)
            else:
                users.append(AppUser(
                    email=row.email, name=row.name, role=row.role, created_at=now, updated_at=now,
                    invited_at=now, invited_by=getattr(actor, "pk", None),
                ))
        if users:
            AppUser.objects.using(alias).bulk_create(users, batch_size=500)
            raws = {}
            for chunk in _chunks(users):
                raws.update(token_issue_many(tenant=tenant, user_ids=[u.pk for u in chunk],
                                             purpose=ActionToken.Purpose.INVITE, created_by=actor))
            mail_enqueue_many(
                [link_mail(tenant=tenant, settings=settings, user_pk=u.pk, email=u.email,
                           name=u.name, purpose=ActionToken.Purpose.INVITE, raw=raws[u.pk])
                 for u in users],
                tenant=tenant,
            )
        result.processed = len(users)
        batch_id = uuid.uuid4().hex
        entries = [
            audit.Entry(event="app_user.invite", target_model=AppUser, target_pk=u.pk,
                        target_repr=u.email, action=audit.CREATE,
                        changes=audit.diff(None, audit.snapshot(u, AUDIT_FIELDS)),
                        data={"batch": batch_id, "source": "csv"})
            for u in users
        ]
        entries.append(audit.Entry(
            event="app_user.batch_invite", target_model=AppUser, target_pk="",
            target_repr=f"import of {len(rows)} rows",
            data={"batch": batch_id, "processed": result.processed, "skipped": result.skipped,
                  "errors": result.error_count},
        ))
        audit.record_many(entries, actor=actor, tenant=tenant)
    return result
