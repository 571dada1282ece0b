"""Every change to one app user. Keyword-only, actor first, one transaction over the tenant
database and the control database (audit, outbox), the permission checked here again whatever
the view did, an audit entry for each change and for each refusal.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast

from django.contrib.auth.hashers import make_password
from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat, Replace
from django.utils import timezone

from accounts.app_users.permissions import ROLE_REFUSED, app_user_refusal
from accounts.models import BANNED_FOREVER, ActionToken, AppFactor, AppSession, AppUser
from accounts.tokens import hash_token, token_issue, token_link, tokens_revoke_for_user
from audit import services as audit
from core import pgcopy
from core.emails import clean_email as clean_address
from core.errors import Conflict, Invalid, NotFound, Refused
from core.text import NAME_MAX_LENGTH, REASON_MAX_LENGTH, clean_text
from outbox.services import Mail, mail_enqueue
from tenants import db as tenant_db
from tenants.config import TenantSettings, tenant_settings
from tenants.emails import render_email, render_notice
from tenants.models import Tenant

# What the audit trail keeps of a user (the password hash never: audit drops it anyway).
AUDIT_FIELDS = (
    "email", "name", "role", "email_confirmed_at", "invited_at", "banned_until", "ban_reason",
    "mfa_enabled", "deleted_at", "user_metadata", "app_metadata",
)
PASSWORD_MAX_LENGTH = 128
METADATA_MAX_BYTES = 16 * 1024
METADATA_MAX_DEPTH = 8
DELETED_EMAIL_DOMAIN = "deleted.invalid"
BAN_DURATIONS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
UNSET: Any = object()
NO_SUCH_USER = "No such user in this tenant."
EMAIL_TAKEN = "A user with this email address already exists."
EMAIL_TAKEN_OTHER = "Another user already has this email address."
P = ParamSpec("P")
R = TypeVar("R")


# --- Input rules (shared with forms, batches and the CSV import) ------------------------------


def normalize_email(value: Any) -> str:
    """The canonical form (``core.emails``) of a syntactically valid address that is not one of
    the addresses deleted users keep (no uniqueness or domain check)."""
    email = clean_address(value)
    if email.endswith("@" + DELETED_EMAIL_DOMAIN):
        raise Invalid("This address is reserved for deleted users.", code="reserved_email", field="email")
    return email


def clean_email(value: Any, *, tenant: Tenant, settings: TenantSettings | None = None) -> str:
    """A new address for this tenant: valid, canonical, and of a domain the tenant allows."""
    email = normalize_email(value)
    settings = settings or tenant_settings(tenant)
    if not settings.email_domain_allowed(email):
        domain = email.rsplit("@", 1)[-1]
        allowed = ", ".join(settings.allowed_email_domains)
        raise Invalid(f"Addresses at {domain} are not allowed in this tenant (allowed: {allowed}).",
                      code="domain_not_allowed", field="email")
    return email


def clean_name(value: Any) -> str:
    if not isinstance(value, str | None):
        raise Invalid("Enter a name as text.", code="not_text", field="name")
    return clean_text(value, label="A name", max_length=NAME_MAX_LENGTH, field="name")


def clean_role(value: Any, *, tenant: Tenant, settings: TenantSettings | None = None) -> str:
    settings = settings or tenant_settings(tenant)
    role = (value or "").strip() if isinstance(value, str | None) else ""
    role = role or settings.default_role
    if role not in settings.roles:
        raise Invalid(
            f"Unknown role '{role[:50]}'. The roles of this tenant are: {', '.join(settings.roles)}.",
            code="unknown_role", field="role",
        )
    return role


def clean_reason(value: Any) -> str:
    """A ban reason: several lines allowed, the text rule of ``core.text`` otherwise."""
    reason = value if isinstance(value, str) else ""
    return clean_text(reason, label="A reason", max_length=REASON_MAX_LENGTH, field="reason", multiline=True)


def clean_password(value: Any, *, tenant: Tenant) -> str:
    minimum = tenant_settings(tenant).password_min_length
    if not isinstance(value, str) or not value:
        raise Invalid("Enter a password.", code="required", field="password")
    if len(value) < minimum:
        raise Invalid(f"A password in this tenant has at least {minimum} characters.",
                      code="too_short", field="password")
    if len(value) > PASSWORD_MAX_LENGTH:
        raise Invalid(f"A password has at most {PASSWORD_MAX_LENGTH} characters.",
                      code="too_long", field="password")
    if "\x00" in value or not value.strip():
        raise Invalid("Enter a real password.", code="blank_password", field="password")
    return value


def _depth(value: Any, limit: int = METADATA_MAX_DEPTH) -> int:
    """How deep ``value`` nests, counted without recursion and at most ``limit + 1`` (a
    hostile document thousands of levels deep must be refused, not crash the request)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            stack.extend((v, level) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def clean_metadata(value: Any, *, label: str = "Metadata", field: str | None = None) -> dict[str, Any]:
    """A JSON object (given as text or as a dict), at most 16 KB and 8 levels deep."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    too_large = f"{label} is larger than {METADATA_MAX_BYTES // 1024} KB."
    too_deep = f"{label} is nested more than {METADATA_MAX_DEPTH} levels deep."
    if isinstance(value, str):
        if len(value) > METADATA_MAX_BYTES * 2:
            raise Invalid(too_large, code="too_large", field=field)
        try:
            data = json.loads(value, parse_constant=_no_constant)
        except RecursionError as exc:
            raise Invalid(too_deep, code="too_deep", field=field) from exc
        except json.JSONDecodeError as exc:
            raise Invalid(f"{label} is not valid JSON (line {exc.lineno}, column {exc.colno}).",
                          code="invalid_json", field=field) from exc
        except ValueError as exc:
            raise Invalid(f"{label} is not valid JSON.", code="invalid_json", field=field) from exc
    else:
        data = value
    if not isinstance(data, dict):
        raise Invalid(f"{label} must be a JSON object, like {{\"plan\": \"pro\"}}.",
                      code="not_object", field=field)
    if _depth(data) > METADATA_MAX_DEPTH:
        raise Invalid(too_deep, code="too_deep", field=field)
    try:
        encoded = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise Invalid(f"{label} holds a value JSON cannot represent.", code="not_json", field=field) from exc
    if len(encoded.encode("utf-8", "surrogatepass")) > METADATA_MAX_BYTES:
        raise Invalid(too_large, code="too_large", field=field)
    if "\\u0000" in encoded or "\x00" in encoded or any(0xD800 <= ord(c) <= 0xDFFF for c in encoded):
        raise Invalid(f"{label} cannot contain NUL characters or lone surrogates.",
                      code="forbidden_characters", field=field)
    return data


def ban_until_for(duration: str, *, until: datetime | None = None, now: datetime | None = None) -> datetime:
    """When a ban of ``duration`` ("1h", "24h", "7d", "30d", "forever", "until") ends."""
    now = now or timezone.now()
    if duration == "forever":
        return BANNED_FOREVER
    if duration in BAN_DURATIONS:
        return now + BAN_DURATIONS[duration]
    if duration == "until":
        if until is None:
            raise Invalid("Choose the date and time the ban ends.", code="required", field="until")
        if timezone.is_naive(until):
            until = timezone.make_aware(until)
        if until <= now:
            raise Invalid("The end of a ban must be in the future.", code="in_past", field="until")
        if until >= BANNED_FOREVER - timedelta(days=1):  # 9999-12-31 is the "no end" marker itself
            raise Invalid("A ban that never ends is “Indefinitely”; choose that instead of a date in 9999.",
                          code="until_too_late", field="until")
        return until
    raise Invalid("Choose how long the ban lasts.", code="unknown_duration", field="duration")


def deleted_email(pk: uuid.UUID | str) -> str:
    """The unique, undeliverable address a soft-deleted user keeps (the id's hex)."""
    return f"deleted-{uuid.UUID(str(pk)).hex}@{DELETED_EMAIL_DOMAIN}"


# --- Plumbing ----------------------------------------------------------------------------------


@contextmanager
def atomic_both(alias: str):
    """One transaction on the control database (audit, outbox) and one on the tenant's."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS), transaction.atomic(using=alias):
        yield


def audited_refusals(fn: Callable[P, R]) -> Callable[P, R]:
    """Refusals (``Refused``, whose facts name the action and the target) are audited as
    ``app_user.refused`` after the service's transaction has rolled back (so they stay)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Refused as exc:
            audit.record(
                event="app_user.refused", actor=kwargs.get("actor"), tenant=cast(Tenant, kwargs["tenant"]),
                target_model=AppUser, target_pk=exc.facts.get("target_pk") or "",
                target_repr=exc.facts.get("target_repr", ""), action=audit.ACCESS,
                data={"action": exc.facts.get("action", ""), "reason": exc.message, "error_code": exc.code},
            )
            raise

    return wrapper


def role_refused(action: str, *, target_repr: str) -> Refused:
    """The refusal of an action the actor's role does not allow at all (batches, imports)."""
    return Refused(ROLE_REFUSED, code="role", action=action, target_pk="", target_repr=target_repr)


def authorize(actor: Any, tenant: Tenant, action: str, *, role: str, email: str, pk: Any = "") -> None:
    refusal = app_user_refusal(
        actor, tenant, action, target_role=role, target_email=email,
        protected_roles=frozenset(tenant_settings(tenant).protected_roles), target_pk=pk,
    )
    if refusal is not None:
        raise refusal


def _locked(alias: str, user_id: Any) -> AppUser:
    try:
        pk = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError as exc:
        raise NotFound(NO_SUCH_USER) from exc
    user = AppUser.objects.using(alias).select_for_update().filter(pk=pk).first()
    if user is None:
        raise NotFound(NO_SUCH_USER)
    return user


def _target(alias: str, tenant: Tenant, actor, user_id: Any, action: str, *, alive: bool = True) -> AppUser:
    """Lock the user, check the actor may ``action`` it, and (by default) that it is not deleted."""
    user = _locked(alias, user_id)
    authorize(actor, tenant, action, role=user.role, email=user.email, pk=user.pk)
    if alive and user.deleted_at is not None:
        raise Conflict("This user is deleted; nothing more can be done to it.", code="deleted")
    return user


def _email_taken(alias: str, email: str, *, exclude: Any = None) -> AppUser | None:
    qs = AppUser.objects.using(alias).filter(email=email)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return qs.first()


def _save_new(alias: str, user: AppUser) -> None:
    try:
        with transaction.atomic(using=alias):
            user.save(using=alias, force_insert=True)
    except IntegrityError as exc:  # a concurrent request took the address first
        raise Conflict(EMAIL_TAKEN, code="email_taken", field="email") from exc


def end_sessions(alias: str, user_ids: Iterable, *, now: datetime | None = None) -> int:
    """Revoke every live session of these users at once; the portal refuses them from now on."""
    ids = list(user_ids)
    now = now or timezone.now()
    ended = 0
    for chunk in pgcopy.id_chunks(ids, alias):
        ended += AppSession.objects.using(alias).filter(
            user_id__any=chunk, revoked_at__isnull=True
        ).update(revoked_at=now)
    return ended


def link_mail(*, tenant: Tenant, settings: TenantSettings, user_pk: Any, email: str, name: str,
              purpose: str, raw: str, redirect_to: str = "") -> Mail:
    """The message carrying a link (the raw token appears here and nowhere else)."""
    lifetime = settings.lifetime(purpose)
    rendered = render_email(
        tenant, purpose, email=email, name=name, link=token_link(tenant, purpose, raw, redirect_to),
        expires_minutes=max(1, int(lifetime.total_seconds() // 60)), sender_name=settings.sender_name,
    )
    return Mail(
        key=f"{purpose}:{user_pk}:{hash_token(raw)[:24]}", to=email, subject=rendered.subject,
        body=rendered.body, kind=purpose,
    )


TENANT_SUSPENDED = ("This tenant is suspended: its portal is closed, so an invitation or a link could not be "
                    "used. Resume the tenant first.")


def _send_link(*, actor, tenant: Tenant, user: AppUser, purpose: str, redirect_to: str = "") -> ActionToken:
    """Issue and mail a link; ``redirect_to`` is kept only if the tenant's allow-list holds it."""
    if tenant.status == Tenant.Status.SUSPENDED:  # the link would lead to a closed portal
        raise Conflict(TENANT_SUSPENDED, code="tenant_suspended")
    token, raw = token_issue(tenant=tenant, user=user, purpose=purpose, created_by=actor)
    settings = tenant_settings(tenant)
    mail = link_mail(
        tenant=tenant, settings=settings, user_pk=user.pk, email=user.email,
        name=user.name, purpose=purpose, raw=raw, redirect_to=settings.redirect_allowed(redirect_to),
    )
    mail_enqueue(key=mail.key, to=mail.to, subject=mail.subject, body=mail.body, kind=mail.kind,
                 tenant=tenant)
    return token


def soft_delete_ids(alias: str, user_ids: Iterable, *, now: datetime) -> int:
    """GoTrue's soft delete, in bulk: email made unique and undeliverable, name, metadata and
    password cleared, factors, sessions and links removed; the row and its history stay.
    Irreversible. Returns how many users were deleted (already deleted ones are left alone)."""
    ids = list(user_ids)
    done = 0
    obfuscated = Concat(
        Value("deleted-"),
        Replace(Cast("id", output_field=CharField()), Value("-"), Value("")),
        Value("@" + DELETED_EMAIL_DOMAIN),
        output_field=CharField(),
    )
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        AppFactor.objects.using(alias).filter(user_id__in=chunk).delete()
        AppSession.objects.using(alias).filter(user_id__in=chunk).delete()
        ActionToken.objects.using(alias).filter(user_id__in=chunk).delete()
        done += AppUser.objects.using(alias).filter(pk__in=chunk, deleted_at__isnull=True).update(
            email=obfuscated, name="", password="", user_metadata={}, app_metadata={},
            mfa_enabled=False, banned_until=None, ban_reason="", deleted_at=now, updated_at=now,
        )
    return done


# --- Creating and inviting ---------------------------------------------------------------------


def _clean_new_id(value: Any) -> uuid.UUID | None:
    if value is None or value == "":
        return None
    try:
        pk = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError as exc:
        raise Invalid("The id must be a UUID.", code="bad_id", field="id") from exc
    if pk.int == 0:
        raise Invalid("The id cannot be the nil UUID.", code="bad_id", field="id")
    return pk


def merge_metadata(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's metadata update: each top-level key of ``patch`` replaces the stored one, a key
    whose value is ``None`` is removed."""
    merged = dict(current or {})
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


@audited_refusals
def app_user_create(
    *, actor, tenant: Tenant, email: str, name: str = "", role: str = "", password: str = "",
    send_invitation: bool = False, confirmed: bool = False,
    user_metadata: Any = None, app_metadata: Any = None, user_id: Any = None,
) -> AppUser:
    """Create a user with an initial password (hashed; never shown again) or an invitation.
    ``user_id`` sets the new user's id (a migration from another system keeps its ids)."""
    alias = tenant_db.using(tenant)
    pk = _clean_new_id(user_id)
    email = clean_email(email, tenant=tenant)
    name, role = clean_name(name), clean_role(role, tenant=tenant)
    user_metadata = clean_metadata(user_metadata, label="User metadata", field="user_metadata")
    app_metadata = clean_metadata(app_metadata, label="App metadata", field="app_metadata")
    if password and send_invitation:
        raise Invalid("Either set an initial password or send an invitation, not both.",
                      code="password_and_invitation", field="password")
    if password:
        clean_password(password, tenant=tenant)
    authorize(actor, tenant, "create_user", role=role, email=email)
    now = timezone.now()
    with atomic_both(alias):
        if _email_taken(alias, email):
            raise Conflict(EMAIL_TAKEN, code="email_taken", field="email")
        if pk is not None and AppUser.objects.using(alias).filter(pk=pk).exists():
            raise Conflict("A user with this id already exists.", code="user_exists", field="id")
        user = AppUser(
            email=email, name=name, role=role, user_metadata=user_metadata,
            app_metadata=app_metadata, created_at=now, updated_at=now,
            email_confirmed_at=now if confirmed else None,
        )
        if pk is not None:
            user.pk = pk
        if password:
            user.password, user.password_changed_at = make_password(password), now
        if send_invitation:
            user.invited_at, user.invited_by = now, getattr(actor, "pk", None)
        _save_new(alias, user)
        audit.record(
            event="app_user.create", actor=actor, tenant=tenant, target=user, action=audit.CREATE,
            after=audit.snapshot(user, AUDIT_FIELDS),
            data={"initial_password": bool(password), "invited": send_invitation, "confirmed": confirmed},
        )
        if send_invitation:
            _send_link(actor=actor, tenant=tenant, user=user, purpose=ActionToken.Purpose.INVITE)
    return user


@audited_refusals
def app_user_invite(
    *, actor, tenant: Tenant, email: str, name: str = "", role: str = "", user_metadata: Any = None,
    redirect_to: str = "",
) -> AppUser:
    """Create an invited user and mail the invitation link (accepted in the tenant portal; then
    on to ``redirect_to`` when the tenant's redirect allow-list holds it)."""
    alias = tenant_db.using(tenant)
    email = clean_email(email, tenant=tenant)
    name, role = clean_name(name), clean_role(role, tenant=tenant)
    user_metadata = clean_metadata(user_metadata, label="User metadata", field="user_metadata")
    authorize(actor, tenant, "invite_user", role=role, email=email)
    now = timezone.now()
    with atomic_both(alias):
        existing = _email_taken(alias, email)
        if existing is not None:
            if existing.status == "invited":
                raise Conflict("This address is already invited; resend the invitation instead.",
                               code="already_invited", field="email")
            raise Conflict(EMAIL_TAKEN, code="email_taken", field="email")
        user = AppUser(
            email=email, name=name, role=role, user_metadata=user_metadata, created_at=now,
            updated_at=now, invited_at=now, invited_by=getattr(actor, "pk", None),
        )
        _save_new(alias, user)
        token = _send_link(actor=actor, tenant=tenant, user=user, purpose=ActionToken.Purpose.INVITE,
                           redirect_to=redirect_to)
        audit.record(
            event="app_user.invite", actor=actor, tenant=tenant, target=user, action=audit.CREATE,
            after=audit.snapshot(user, AUDIT_FIELDS), data={"expires_at": token.expires_at},
        )
    return user


@audited_refusals
def app_user_invite_existing(*, actor, tenant: Tenant, user_id: Any, redirect_to: str = "") -> ActionToken:
    """Invite a user who exists but never confirmed an address and was never invited (created
    without a confirmation): GoTrue's invite re-invites any unconfirmed user. Mails the link."""
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "invite_user")
        if user.email_confirmed_at is not None:
            raise Conflict(EMAIL_TAKEN, code="email_taken", field="email")
        before = audit.snapshot(user, AUDIT_FIELDS)
        user.invited_at, user.invited_by = timezone.now(), getattr(actor, "pk", None)
        user.updated_at = user.invited_at
        user.save(using=alias, update_fields=["invited_at", "invited_by", "updated_at"])
        token = _send_link(actor=actor, tenant=tenant, user=user, purpose=ActionToken.Purpose.INVITE,
                           redirect_to=redirect_to)
        audit.record(
            event="app_user.invite", actor=actor, tenant=tenant, target=user, before=before,
            after=audit.snapshot(user, AUDIT_FIELDS), data={"expires_at": token.expires_at, "existing": True},
        )
    return token


@audited_refusals
def app_user_invitation_resend(*, actor, tenant: Tenant, user_id: Any, redirect_to: str = "") -> ActionToken:
    """A new invitation link (the earlier ones stop working)."""
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "resend_invitation")
        if user.status != "invited":
            raise Conflict("Only a pending invitation can be resent: this user is not waiting for one.",
                           code="not_invited")
        token = _send_link(actor=actor, tenant=tenant, user=user, purpose=ActionToken.Purpose.INVITE,
                           redirect_to=redirect_to)
        audit.record(
            event="app_user.invitation_resend", actor=actor, tenant=tenant, target=user,
            data={"expires_at": token.expires_at},
        )
    return token


@audited_refusals
def app_user_invitation_revoke(*, actor, tenant: Tenant, user_id: Any) -> None:
    """Withdraw a pending invitation: its links die and the never-accepted user is removed
    (the audit trail keeps the invitation's history). Accepted users are deleted, not revoked."""
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "revoke_invitation")
        if user.status != "invited":
            raise Conflict("Only a pending invitation can be revoked: this user is not invited.",
                           code="not_invited")
        before = audit.snapshot(user, AUDIT_FIELDS)
        pk, email = user.pk, user.email
        user.delete(using=alias)
        audit.record(
            event="app_user.invitation_revoke", actor=actor, tenant=tenant, target_model=AppUser,
            target_pk=pk, target_repr=email, action=audit.DELETE, before=before,
        )


# --- Editing -----------------------------------------------------------------------------------


@audited_refusals
def app_user_update(
    *, actor, tenant: Tenant, user_id: Any, name: Any = UNSET, email: Any = UNSET,
    role: Any = UNSET, user_metadata: Any = UNSET, app_metadata: Any = UNSET,
    user_metadata_patch: dict[str, Any] | None = None, app_metadata_patch: dict[str, Any] | None = None,
) -> AppUser:
    """Change name, role or metadata (only what is given) at once; a new email is not set but
    requested (``_email_change_request``): it takes effect when the new address confirms it. The
    ``*_patch`` arguments merge into the stored metadata under the row lock (``merge_metadata``)
    instead of replacing it."""
    alias = tenant_db.using(tenant)
    settings = tenant_settings(tenant)
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = clean_name(name)
    if email is not UNSET:
        changes["email"] = clean_email(email, tenant=tenant, settings=settings)
    if role is not UNSET:
        changes["role"] = clean_role(role, tenant=tenant, settings=settings)
    if user_metadata is not UNSET:
        changes["user_metadata"] = clean_metadata(user_metadata, label="User metadata", field="user_metadata")
    if app_metadata is not UNSET:
        changes["app_metadata"] = clean_metadata(app_metadata, label="App metadata", field="app_metadata")
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "edit_user")
        for name_, patch, label in (("user_metadata", user_metadata_patch, "User metadata"),
                                    ("app_metadata", app_metadata_patch, "App metadata")):
            if patch:
                changes[name_] = clean_metadata(merge_metadata(getattr(user, name_), patch),
                                                label=label, field=name_)
        changes = {k: v for k, v in changes.items() if getattr(user, k) != v}
        if not changes:
            return user
        if "role" in changes:
            authorize(actor, tenant, "change_role", role=user.role, email=user.email, pk=user.pk)
            # Granting a protected role is as guarded as changing a user who holds one.
            authorize(actor, tenant, "change_role", role=changes["role"], email=user.email, pk=user.pk)
        new_email = changes.pop("email", None)
        if new_email is not None:
            _email_change_request(actor=actor, tenant=tenant, settings=settings, user=user, email=new_email)
        if not changes:
            return user
        before = audit.snapshot(user, AUDIT_FIELDS)
        for key, value in changes.items():
            setattr(user, key, value)
        user.updated_at = timezone.now()
        user.save(using=alias, update_fields=[*changes, "updated_at"])
        audit.record(
            event="app_user.update", actor=actor, tenant=tenant, target=user,
            before=before, after=audit.snapshot(user, AUDIT_FIELDS),
        )
    return user


def _email_change_request(*, actor, tenant: Tenant, settings: TenantSettings, user: AppUser,
                          email: str) -> ActionToken:
    """A staff change of a user's email (issue 11, finding 2): nothing changes yet. The new
    address gets a link (purpose ``email_change``, the recovery lifetime) that makes the change
    when opened; the old address is told; a newer request replaces an older one. The caller has
    locked the user, inside ``atomic_both``. Console and API ask for it through
    ``app_user_update(email=...)``; the console asks for a recent OTP first."""
    alias = tenant_db.using(tenant)
    if _email_taken(alias, email, exclude=user.pk):
        raise Conflict(EMAIL_TAKEN_OTHER, code="email_taken", field="email")
    token, raw = token_issue(tenant=tenant, user=user, purpose=ActionToken.Purpose.EMAIL_CHANGE,
                             created_by=actor, new_email=email)
    mail = link_mail(tenant=tenant, settings=settings, user_pk=user.pk, email=email, name=user.name,
                     purpose=ActionToken.Purpose.EMAIL_CHANGE, raw=raw)
    mail_enqueue(key=mail.key, to=mail.to, subject=mail.subject, body=mail.body, kind=mail.kind,
                 tenant=tenant)
    notice = render_notice(tenant, "email_change_notice", email=user.email, name=user.name,
                           sender_name=settings.sender_name, new_email=email)
    mail_enqueue(key=f"email_change_notice:{user.pk}:{token.pk}", to=user.email, subject=notice.subject,
                 body=notice.body, kind="email_change_notice", tenant=tenant)
    audit.record(
        event="app_user.email_change_requested", actor=actor, tenant=tenant, target=user,
        action=audit.UPDATE, data={"new_email": email, "action_token": str(token.pk),
                                   "expires_at": token.expires_at},
    )
    return token


@audited_refusals
def app_user_confirm_email(*, actor, tenant: Tenant, user_id: Any) -> AppUser:
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "confirm_email")
        if user.email_confirmed_at is not None:
            raise Conflict("This email address is already confirmed.", code="already_confirmed")
        before = audit.snapshot(user, AUDIT_FIELDS)
        user.email_confirmed_at = user.updated_at = timezone.now()
        user.save(using=alias, update_fields=["email_confirmed_at", "updated_at"])
        audit.record(
            event="app_user.email_confirm", actor=actor, tenant=tenant, target=user,
            before=before, after=audit.snapshot(user, AUDIT_FIELDS),
        )
    return user


# --- Bans and sessions -------------------------------------------------------------------------


@audited_refusals
def app_user_ban(*, actor, tenant: Tenant, user_id: Any, until: datetime, reason: str = "") -> AppUser:
    """Ban until ``until`` (``BANNED_FOREVER`` for indefinitely). Every session ends at once
    and pending recovery and magic links die; the ban lifts itself when ``until`` passes."""
    alias = tenant_db.using(tenant)
    reason = clean_reason(reason)
    now = timezone.now()
    if until <= now:
        raise Invalid("The end of a ban must be in the future.", code="in_past", field="until")
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "ban_user")
        before = audit.snapshot(user, AUDIT_FIELDS)
        user.banned_until, user.ban_reason, user.updated_at = min(until, BANNED_FOREVER), reason, now
        user.save(using=alias, update_fields=["banned_until", "ban_reason", "updated_at"])
        ended = end_sessions(alias, [user.pk], now=now)
        tokens_revoke_for_user(
            tenant=tenant, user_ids=[user.pk],
            purposes=[ActionToken.Purpose.RECOVERY, ActionToken.Purpose.MAGIC_LINK],
        )
        audit.record(
            event="app_user.ban", actor=actor, tenant=tenant, target=user, before=before,
            after=audit.snapshot(user, AUDIT_FIELDS),
            data={"indefinitely": user.banned_until >= BANNED_FOREVER, "sessions_ended": ended},
        )
    return user


@audited_refusals
def app_user_unban(*, actor, tenant: Tenant, user_id: Any) -> AppUser:
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "unban_user")
        if user.banned_until is None:
            raise Conflict("This user is not banned.", code="not_banned")
        before = audit.snapshot(user, AUDIT_FIELDS)
        user.banned_until, user.ban_reason, user.updated_at = None, "", timezone.now()
        user.save(using=alias, update_fields=["banned_until", "ban_reason", "updated_at"])
        audit.record(
            event="app_user.unban", actor=actor, tenant=tenant, target=user, before=before,
            after=audit.snapshot(user, AUDIT_FIELDS),
        )
    return user


def _inner(fn: Callable[P, R]) -> Callable[P, R]:
    """A service without its ``audited_refusals`` wrapper: inside a composite transaction the
    refusal is audited once by the composite, after the outer rollback (an inner audit would be
    rolled back with everything else)."""
    return cast(Callable[P, R], getattr(fn, "__wrapped__", fn))


@audited_refusals
def app_user_admin_update(
    *, actor, tenant: Tenant, user_id: Any, email: Any = UNSET, name: Any = UNSET, role: Any = UNSET,
    user_metadata_patch: dict[str, Any] | None = None, app_metadata_patch: dict[str, Any] | None = None,
    email_confirm: bool = False, ban: Any = UNSET,
) -> AppUser:
    """GoTrue's admin update: all the parts given, in one transaction (all or nothing), each
    authorized with its own permission and audited with its own event. In order: name, role and
    metadata (``edit_user``/``change_role``), the confirmation (``confirm_email``; already
    confirmed is no change), the ban (``ban``: a ``datetime`` bans until then, ``None`` lifts a
    ban and is no change when there is none), then the email change request. A part that fails
    rolls back the ones before it."""
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        changes: dict[str, Any] = {k: v for k, v in (("name", name), ("role", role)) if v is not UNSET}
        if user_metadata_patch:
            changes["user_metadata_patch"] = user_metadata_patch
        if app_metadata_patch:
            changes["app_metadata_patch"] = app_metadata_patch
        if changes:
            _inner(app_user_update)(actor=actor, tenant=tenant, user_id=user_id, **changes)
        if email_confirm:
            try:
                _inner(app_user_confirm_email)(actor=actor, tenant=tenant, user_id=user_id)
            except Conflict as exc:
                if exc.code != "already_confirmed":
                    raise
        if ban is not UNSET:
            if ban is not None:
                _inner(app_user_ban)(actor=actor, tenant=tenant, user_id=user_id, until=ban)
            elif _locked(alias, user_id).banned_until is not None:
                _inner(app_user_unban)(actor=actor, tenant=tenant, user_id=user_id)
        if email is not UNSET:
            _inner(app_user_update)(actor=actor, tenant=tenant, user_id=user_id, email=email)
        return _locked(alias, user_id)


@audited_refusals
def app_user_sign_out(*, actor, tenant: Tenant, user_id: Any, session_id: Any = None) -> int:
    """End one session (``session_id``) or every session of the user. Returns how many ended."""
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "sign_out_user", alive=False)
        qs = AppSession.objects.using(alias).filter(user_id=user.pk, revoked_at__isnull=True)
        if session_id is not None:
            try:
                sid = uuid.UUID(str(session_id))
            except ValueError as exc:
                raise NotFound("No such session.", code="session_not_found") from exc
            # Another user's session (or none at all) is a foreign id: not found, like a user.
            if not AppSession.objects.using(alias).filter(pk=sid, user_id=user.pk).exists():
                raise NotFound("No such session.", code="session_not_found")
            qs = qs.filter(pk=sid)
        ended = qs.update(revoked_at=timezone.now())
        if session_id is not None and not ended:
            raise Conflict("This session has already ended.", code="session_ended")
        audit.record(
            event="app_user.sign_out", actor=actor, tenant=tenant, target=user,
            data={"sessions_ended": ended, "session": str(session_id) if session_id else "all"},
        )
    return ended


# --- Links -------------------------------------------------------------------------------------


def _linkable(user: AppUser, what: str) -> None:
    if user.is_banned:
        raise Conflict(f"This user is banned: unban them before sending {what}.", code="banned")


@audited_refusals
def app_user_send_recovery(*, actor, tenant: Tenant, user_id: Any, sign_out: bool = False) -> ActionToken:
    """Mail a password-recovery link; with ``sign_out`` every session ends now as well."""
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "send_recovery")
        _linkable(user, "a recovery link")
        token = _send_link(actor=actor, tenant=tenant, user=user, purpose=ActionToken.Purpose.RECOVERY)
        ended = end_sessions(alias, [user.pk]) if sign_out else 0
        audit.record(
            event="app_user.recovery_sent", actor=actor, tenant=tenant, target=user,
            data={"expires_at": token.expires_at, "signed_out": sign_out, "sessions_ended": ended},
        )
    return token


@audited_refusals
def app_user_send_magic_link(*, actor, tenant: Tenant, user_id: Any) -> ActionToken:
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "send_magic_link")
        _linkable(user, "a magic link")
        token = _send_link(actor=actor, tenant=tenant, user=user, purpose=ActionToken.Purpose.MAGIC_LINK)
        audit.record(
            event="app_user.magic_link_sent", actor=actor, tenant=tenant, target=user,
            data={"expires_at": token.expires_at},
        )
    return token


# --- Factors -----------------------------------------------------------------------------------


@audited_refusals
def app_user_factor_remove(*, actor, tenant: Tenant, user_id: Any, factor_id: Any = None) -> int:
    """Remove one MFA factor (``factor_id``) or all of them; ``mfa_enabled`` follows, and every
    session ends (a session verified with the removed factor must not outlive it)."""
    alias = tenant_db.using(tenant)
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "remove_factor")
        qs = AppFactor.objects.using(alias).filter(user_id=user.pk)
        if factor_id is not None:
            try:
                qs = qs.filter(pk=uuid.UUID(str(factor_id)))
            except ValueError as exc:
                raise NotFound("No such factor.", code="factor_not_found") from exc
        removed = [
            {"id": str(pk), "kind": kind, "name": name}
            for pk, kind, name in qs.values_list("pk", "kind", "friendly_name")
        ]
        if not removed and factor_id is not None:
            raise NotFound("No such factor.", code="factor_not_found")  # unknown or another user's
        if not removed:
            raise Conflict("This user has no factor.", code="no_factor")
        qs.delete()
        before = audit.snapshot(user, AUDIT_FIELDS)
        user.mfa_enabled = AppFactor.objects.using(alias).filter(
            user_id=user.pk, confirmed_at__isnull=False
        ).exists()
        user.updated_at = timezone.now()
        user.save(using=alias, update_fields=["mfa_enabled", "updated_at"])
        ended = end_sessions(alias, [user.pk])
        audit.record(
            event="app_user.factor_remove", actor=actor, tenant=tenant, target=user, before=before,
            after=audit.snapshot(user, AUDIT_FIELDS),
            data={"factors": removed, "all": factor_id is None, "sessions_ended": ended},
        )
    return len(removed)


# --- Deleting ----------------------------------------------------------------------------------


@audited_refusals
def app_user_delete(*, actor, tenant: Tenant, user_id: Any, hard: bool = False) -> None:
    """Soft delete (GoTrue semantics, irreversible: see ``soft_delete_ids``) or, with ``hard``,
    remove the row and everything under it. The audit trail keeps the history either way."""
    alias = tenant_db.using(tenant)
    now = timezone.now()
    with atomic_both(alias):
        user = _target(alias, tenant, actor, user_id, "delete_user", alive=False)
        if not hard and user.deleted_at is not None:
            raise Conflict("This user is already deleted.", code="already_deleted")
        before = audit.snapshot(user, AUDIT_FIELDS)
        pk, email = user.pk, user.email
        if hard:
            user.delete(using=alias)
            audit.record(
                event="app_user.delete", actor=actor, tenant=tenant, target_model=AppUser,
                target_pk=pk, target_repr=email, action=audit.DELETE, before=before,
                data={"hard": True},
            )
            return
        soft_delete_ids(alias, [pk], now=now)
        user.refresh_from_db(using=alias)
        audit.record(
            event="app_user.soft_delete", actor=actor, tenant=tenant, target_model=AppUser,
            target_pk=pk, target_repr=email, before=before,
            after=audit.snapshot(user, AUDIT_FIELDS), data={"hard": False},
        )


# --- Links handed to the caller (the API's generate_link) --------------------------------------

LINK_KINDS = ("invite", "recovery", "magiclink", "signup")
_LINK_PURPOSES = {
    "invite": ActionToken.Purpose.INVITE,
    "recovery": ActionToken.Purpose.RECOVERY,
    "magiclink": ActionToken.Purpose.MAGIC_LINK,
    "signup": ActionToken.Purpose.MAGIC_LINK,  # redeeming it confirms the address
}


@audited_refusals
def app_user_generate_link(
    *, actor, tenant: Tenant, kind: str, email: Any, password: Any = "", data: Any = None,
) -> tuple[AppUser, ActionToken, str, bool]:
    """Issue a link for the caller to deliver (nothing is mailed): GoTrue's generate_link.

    ``invite`` invites (or re-invites an unconfirmed user), ``recovery`` needs an existing user,
    ``magiclink`` signs an unknown address up unconfirmed, ``signup`` creates a user with
    ``password``. Returns ``(user, token, raw, created)``; the raw token is in no audit entry.
    An earlier unused link of the same purpose stops working.
    """
    if kind not in _LINK_PURPOSES:
        raise Invalid(f"Invalid email action link type requested: {str(kind)[:40]}", code="bad_link_type",
                      field="type")
    alias = tenant_db.using(tenant)
    settings = tenant_settings(tenant)
    email = normalize_email(email) if kind == "recovery" else clean_email(email, tenant=tenant, settings=settings)
    data = clean_metadata(data, label="User metadata", field="data")
    if kind == "signup":
        if not password:
            raise Invalid("Signup requires a valid password.", code="required", field="password")
        clean_password(password, tenant=tenant)
    authorize(actor, tenant, "generate_link", role=settings.default_role, email=email)
    purpose = _LINK_PURPOSES[kind]
    now = timezone.now()
    created = False
    with atomic_both(alias):
        found = _email_taken(alias, email)
        if found is None:
            if kind == "recovery":
                raise NotFound("User with this email not found.", code="not_found", field="email")
            user = AppUser(email=email, role=settings.default_role, user_metadata=data, created_at=now,
                           updated_at=now)
            if kind == "invite":
                user.invited_at, user.invited_by = now, getattr(actor, "pk", None)
            if kind == "signup":
                user.password, user.password_changed_at = make_password(password), now
            _save_new(alias, user)
            created = True
            audit.record(
                event="app_user.create", actor=actor, tenant=tenant, target=user, action=audit.CREATE,
                after=audit.snapshot(user, AUDIT_FIELDS), data={"via_link": kind},
            )
        else:
            user = _target(alias, tenant, actor, found.pk, "generate_link")
            if kind in ("invite", "signup") and user.email_confirmed_at is not None:
                raise Conflict(EMAIL_TAKEN, code="email_taken", field="email")
            if kind in ("recovery", "magiclink"):
                _linkable(user, "a link")
            fields = []
            if kind == "invite" and user.invited_at is None:
                user.invited_at, user.invited_by = now, getattr(actor, "pk", None)
                fields += ["invited_at", "invited_by"]
            if data and kind in ("invite", "signup", "magiclink"):
                user.user_metadata = clean_metadata(merge_metadata(user.user_metadata, data),
                                                    label="User metadata", field="data")
                fields.append("user_metadata")
            if fields:
                user.updated_at = now
                user.save(using=alias, update_fields=[*fields, "updated_at"])
        token, raw = token_issue(tenant=tenant, user=user, purpose=purpose, created_by=actor)
        audit.record(
            event="app_user.link_generated", actor=actor, tenant=tenant, target=user,
            data={"type": kind, "purpose": purpose, "token": str(token.pk), "expires_at": token.expires_at,
                  "created": created},
        )
    return user, token, raw, created
