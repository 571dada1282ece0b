"""Signing in to the portal, the link flows (invitation, recovery, magic link), and passwords.

A sign-in that passes the first step returns either a session (cookie value) or, when the user
has a confirmed factor, a short-lived signed "second factor pending" value; the second step
turns that into a session at ``aal2``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib.auth import password_validation
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import ActionToken, AppUser
from accounts.tokens import token_issue, token_link, token_peek, token_redeem
from audit import services as audit
from core.emails import canonical_email
from core.errors import Conflict, Invalid, Refused
from core.text import NAME_MAX_LENGTH, clean_text, has_forbidden_chars
from outbox.models import OutboxMessage
from outbox.services import Prepared, mail_enqueue
from portal.services import limits
from portal.services.common import (
    PortalActor,
    record,
    refusal_message,
    refuse_while_impersonating,
    user_refusal,
)
from portal.services.factors import confirmed_factor, second_factor_check
from portal.services.sessions import session_create, sessions_revoke_all
from tenants import db as tenant_db
from tenants.config import tenant_settings
from tenants.emails import render_email
from tenants.models import Tenant

MFA_PENDING_SALT = "portal.mfa-pending"
MFA_PENDING_SECONDS = 300
INVALID_CREDENTIALS = "Wrong email or password."
LOCKED = "Too many failed attempts for this account. Try again in 15 minutes."
LINK_PURPOSES = (ActionToken.Purpose.RECOVERY, ActionToken.Purpose.MAGIC_LINK)
MAX_PASSWORD_LENGTH = 256
# Never matches; check_password still runs the default hasher once.
UNUSABLE_PASSWORD = "!"  # noqa: S105 - a marker, not a secret


@dataclass(frozen=True)
class SignInResult:
    """Either ``session_token`` (signed in) or ``mfa_pending`` (a second factor is needed)."""

    user: AppUser
    session_token: str | None = None
    mfa_pending: str | None = None


@dataclass(frozen=True)
class Client:
    """Where a request came from, for the session row."""

    ip_address: str | None = None
    user_agent: str = ""


def _alias(tenant: Tenant) -> str:
    if not tenant.accepts_app_users:
        raise Conflict("This application is not available at the moment.", code="tenant_closed")
    return tenant_db.using(tenant)


def validate_app_password(*, tenant: Tenant, password: str, user: AppUser | None) -> None:
    """The tenant's minimum length plus Django's common, numeric and similarity checks.
    Raises ``Invalid`` (code ``weak_password``, every reason on the field ``password``)."""
    if len(password or "") > MAX_PASSWORD_LENGTH:
        raise Invalid(f"Use at most {MAX_PASSWORD_LENGTH} characters.", code="too_long", field="password")
    validators: list[password_validation.PasswordValidator] = [
        password_validation.MinimumLengthValidator(tenant_settings(tenant).password_min_length),
        password_validation.UserAttributeSimilarityValidator(user_attributes=("email", "name")),
        password_validation.CommonPasswordValidator(),
        password_validation.NumericPasswordValidator(),
    ]
    try:
        # The validators read only attributes (email, name): an app user serves as well as a staff one.
        password_validation.validate_password(
            password, user=user, password_validators=validators,  # type: ignore[arg-type]
        )
    except DjangoValidationError as exc:
        reasons = list(exc.messages)
        raise Invalid(reasons[0], code="weak_password", fields={"password": reasons}) from exc


def _refuse_forbidden(email: str) -> None:
    """No account can have an address with a direction override or a control character: such
    input is refused before it reaches a counter or the audit trail (``object_repr``)."""
    if has_forbidden_chars(email or ""):
        raise Invalid("Enter a valid email address.", code="invalid_email", field="email")


def _finish(
    *, tenant: Tenant, user: AppUser, client: Client, method: str, second_factor_done: bool = False
) -> SignInResult:
    """Open a session, or ask for the second factor when the user has one."""
    if not second_factor_done and confirmed_factor(tenant=tenant, user=user) is not None:
        pending = signing.dumps(
            {"u": str(user.pk), "t": str(tenant.pk), "m": method}, salt=MFA_PENDING_SALT
        )
        return SignInResult(user=user, mfa_pending=pending)
    _, raw = session_create(
        tenant=tenant, user=user, aal="aal2" if second_factor_done else "aal1",
        ip_address=client.ip_address, user_agent=client.user_agent,
    )
    record("app_user.sign_in", tenant=tenant, user=user, data={"method": method},
           action=audit.ACCESS)
    return SignInResult(user=user, session_token=raw)


def _fail(tenant: Tenant, email: str, user: AppUser | None, reason: str) -> None:
    locked_now = limits.register_failure(tenant, email)
    record("app_user.sign_in_failed", tenant=tenant, user=user, data={"reason": reason},
           target_repr=email, action=audit.ACCESS)
    if locked_now:
        record("app_user.locked_out", tenant=tenant, user=user, target_repr=email,
               action=audit.ACCESS)


def check_current_password(*, tenant: Tenant, user: AppUser, password: str) -> None:
    """The signed-in user's password, asked again (password change, factor removal). Wrong
    answers count toward the same lockout as sign-in, so a stolen session cannot guess freely."""
    email = canonical_email(user.email)
    if limits.is_locked(tenant, email):
        raise Refused(LOCKED, code="locked")
    if not user.password or not check_password((password or "")[:MAX_PASSWORD_LENGTH], user.password):
        _fail(tenant, email, user, "current_password")
        raise Invalid("Your current password is not right.", code="bad_password", field="password")


def sign_in_password(*, tenant: Tenant, email: str, password: str, client: Client) -> SignInResult:
    """Email and password. Lockout: 10 failures per account → 15 minutes (known or not)."""
    alias = _alias(tenant)
    _refuse_forbidden(email)
    email = canonical_email(email)
    user = AppUser.objects.using(alias).filter(email=email).first() if email else None
    if limits.is_locked(tenant, email):
        record("app_user.sign_in_failed", tenant=tenant, user=user, data={"reason": "locked"},
               target_repr=email, action=audit.ACCESS)
        raise Refused(LOCKED, code="locked")
    encoded = user.password if user is not None and user.password else UNUSABLE_PASSWORD
    # With no account (or no password) check_password still runs the hasher: same timing.
    if not check_password((password or "")[:MAX_PASSWORD_LENGTH], encoded) or user is None:
        _fail(tenant, email, user, "password")
        raise Refused(INVALID_CREDENTIALS, code="invalid_credentials")
    refusal = user_refusal(user)
    if refusal is not None:
        record("app_user.sign_in_failed", tenant=tenant, user=user, data={"reason": refusal},
               action=audit.ACCESS)
        raise Refused(refusal_message(refusal, user), code=refusal)
    limits.reset_failures(tenant, email)
    return _finish(tenant=tenant, user=user, client=client, method="password")


def mfa_pending_user(*, tenant: Tenant, pending: str | None) -> AppUser | None:
    """The user a "second factor pending" value names, while it is fresh; else ``None``."""
    if not pending:
        return None
    try:
        data = signing.loads(pending, salt=MFA_PENDING_SALT, max_age=MFA_PENDING_SECONDS)
    except signing.BadSignature:
        return None
    if data.get("t") != str(tenant.pk):
        return None
    return AppUser.objects.using(_alias(tenant)).filter(pk=data.get("u")).first()


def sign_in_second_factor(*, tenant: Tenant, pending: str | None, code: str, client: Client) -> SignInResult:
    """The second step: a TOTP code or a recovery code. Failures count toward the lockout."""
    user = mfa_pending_user(tenant=tenant, pending=pending)
    if user is None:
        raise Conflict("Your sign-in took too long. Start again.", code="expired")
    if limits.is_locked(tenant, user.email):
        raise Refused(LOCKED, code="locked")
    refusal = user_refusal(user)
    if refusal is not None:
        raise Refused(refusal_message(refusal, user), code=refusal)
    method = second_factor_check(tenant=tenant, user=user, code=code)
    if method is None:
        _fail(tenant, user.email, user, "second_factor")
        raise Invalid("That code is not right.", code="bad_code", field="code")
    limits.reset_failures(tenant, user.email)
    if method == "recovery_code":
        record("app_user.recovery_code_used", tenant=tenant, user=user, action=audit.ACCESS)
    return _finish(tenant=tenant, user=user, client=client, method=method, second_factor_done=True)


# --- Links ---------------------------------------------------------------------------------


LINK_PREPARER = "portal_link"


def link_request(*, tenant: Tenant, email: str, purpose: str) -> None:
    """Mail a recovery or magic link. Always returns nothing: the caller answers the same way
    whether the account exists, is banned, or the request is over the rate limit.

    The request does the same work whatever the address: the rate limit, then one outbox row
    (an intent with no token). Finding the account, issuing the token, rendering the mail and
    the audit entry happen when the mail is delivered (``link_mail_prepare``): by the mail
    worker in production, so the answer's timing tells nothing about the account (issue 11,
    finding 3); at once with inline delivery (development).
    """
    if purpose not in LINK_PURPOSES:
        raise Invalid("Unknown kind of link.", code="unknown_link_type")
    _alias(tenant)
    _refuse_forbidden(email)
    email = canonical_email(email)
    if not email or not limits.link_request_allowed(tenant, email):
        return
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        mail_enqueue(
            key=f"portal:{purpose}:request:{uuid.uuid4()}", to=email,
            subject=f"{ActionToken.Purpose(purpose).label} (written when sent)", body="",
            kind=str(purpose), tenant=tenant, prepare=f"{LINK_PREPARER}:{purpose}",
        )


def link_mail_prepare(message: OutboxMessage, purpose: str) -> Prepared | None:
    """The preparer of ``link_request``'s intents (registered in ``PortalConfig.ready``): the
    link's mail for an account that may have one, or ``None`` (no such account, banned, deleted,
    the tenant closed): the intent is dropped and nothing is recorded."""
    tenant = message.tenant
    if tenant is None or purpose not in LINK_PURPOSES or not tenant.accepts_app_users:
        return None
    alias = tenant_db.using(tenant)
    user = AppUser.objects.using(alias).filter(email=canonical_email(message.to), deleted_at__isnull=True).first()
    if user is None or user.is_banned:
        return None
    conf = tenant_settings(tenant)
    minutes = int(conf.lifetime(purpose).total_seconds() // 60)
    with transaction.atomic(using=alias):
        token, raw = token_issue(tenant=tenant, user=user, purpose=purpose)
    mail = render_email(
        tenant, str(purpose), email=user.email, name=user.name,
        link=token_link(tenant, purpose, raw), expires_minutes=minutes,
        sender_name=conf.sender_name,
    )
    record(f"app_user.{purpose}_requested", tenant=tenant, user=user, action=audit.CREATE,
           data={"action_token": str(token.pk), "mail": str(message.pk)})
    return Prepared(to=user.email, subject=mail.subject, body=mail.body, kind=str(purpose))


def link_peek(*, tenant: Tenant, raw: str, purpose: str) -> AppUser:
    """The user behind a link, without using it (to show its form). Raises ``Invalid`` (code
    ``link_invalid``) or ``Refused`` (banned or deleted user)."""
    _alias(tenant)
    token = token_peek(tenant=tenant, raw=raw, purpose=purpose)
    refusal = user_refusal(token.user)
    if refusal in {"banned", "deleted"}:
        raise Refused(refusal_message(refusal, token.user), code=refusal)
    return token.user


def _set_password_and_redeem(
    *, tenant: Tenant, raw: str, purpose: str, password: str | None, client: Client, method: str,
    end_sessions: bool,
) -> SignInResult:
    alias = _alias(tenant)
    user = link_peek(tenant=tenant, raw=raw, purpose=purpose)
    encoded = None
    if password is not None:
        validate_app_password(tenant=tenant, password=password, user=user)
        encoded = make_password(password)  # slow: before the transaction, not inside it
    with transaction.atomic(using=alias):
        token = token_redeem(tenant=tenant, raw=raw, purpose=purpose)
        now = timezone.now()
        changes: dict = {"email_confirmed_at": Coalesce("email_confirmed_at", now), "updated_at": now}
        if encoded is not None:
            # password_changed_at voids every other link issued before now.
            changes.update(password=encoded, password_changed_at=now)
        AppUser.objects.using(alias).filter(pk=token.user_id).update(**changes)
        user = AppUser.objects.using(alias).get(pk=token.user_id)
        ended = sessions_revoke_all(tenant=tenant, user=user) if end_sessions else 0
        record(f"app_user.{method}", tenant=tenant, user=user,
               data={"action_token": str(token.pk), "sessions_ended": ended})
        return _finish(tenant=tenant, user=user, client=client, method=method)


def invitation_accept(*, tenant: Tenant, raw: str, password: str, client: Client) -> SignInResult:
    """Set the first password from an invitation: the email is confirmed, the link used."""
    return _set_password_and_redeem(
        tenant=tenant, raw=raw, purpose=ActionToken.Purpose.INVITE, password=password,
        client=client, method="invitation_accepted", end_sessions=False,
    )


def recovery_complete(*, tenant: Tenant, raw: str, password: str, client: Client) -> SignInResult:
    """Set a new password from a recovery link; every existing session of the user ends."""
    return _set_password_and_redeem(
        tenant=tenant, raw=raw, purpose=ActionToken.Purpose.RECOVERY, password=password,
        client=client, method="password_recovered", end_sessions=True,
    )


def magic_link_sign_in(*, tenant: Tenant, raw: str, client: Client) -> SignInResult:
    """Sign in from a magic link (which also confirms the email address)."""
    return _set_password_and_redeem(
        tenant=tenant, raw=raw, purpose=ActionToken.Purpose.MAGIC_LINK, password=None,
        client=client, method="magic_link_used", end_sessions=False,
    )


# --- Own account ---------------------------------------------------------------------------


def password_change(*, actor: PortalActor, tenant: Tenant, current: str, new: str) -> None:
    """Change the actor's own password: the current one is required; the other sessions and
    every outstanding link of the user end."""
    refuse_while_impersonating(actor, tenant, "password_change")
    alias = _alias(tenant)
    user = AppUser.objects.using(alias).get(pk=actor.user.pk)
    check_current_password(tenant=tenant, user=user, password=current)
    validate_app_password(tenant=tenant, password=new, user=user)
    encoded = make_password(new)
    with transaction.atomic(using=alias):
        now = timezone.now()
        AppUser.objects.using(alias).filter(pk=user.pk).update(
            password=encoded, password_changed_at=now, updated_at=now
        )
        ended = sessions_revoke_all(tenant=tenant, user=user, keep=actor.session)
    record("app_user.password_changed", tenant=tenant, user=user, actor=actor,
           data={"sessions_ended": ended})


def profile_update(*, actor: PortalActor, tenant: Tenant, name: str) -> AppUser:
    """The actor's own name (the text rule of ``core.text``; runs of spaces collapsed)."""
    name = clean_text(name, label="The name", max_length=NAME_MAX_LENGTH, field="name", collapse_spaces=True)
    alias = _alias(tenant)
    before = AppUser.objects.using(alias).get(pk=actor.user.pk)
    AppUser.objects.using(alias).filter(pk=before.pk).update(name=name, updated_at=timezone.now())
    after = AppUser.objects.using(alias).get(pk=before.pk)
    audit.record(
        event="app_user.profile_updated",
        actor=actor.impersonator, impersonator=actor.impersonator, tenant=tenant, target=after,
        before=audit.snapshot(before, ["name"]), after=audit.snapshot(after, ["name"]),
        data={"app_user": str(after.pk), "via": "portal",
              **({"impersonation": str(actor.impersonation_id)} if actor.is_impersonating else {})},
    )
    return after


def sign_out(*, actor: PortalActor, tenant: Tenant) -> None:
    """End the current session (GoTrue's ``local`` scope)."""
    from accounts.models import AppSession

    if actor.session is None:
        return
    AppSession.objects.using(tenant_db.using(tenant)).filter(pk=actor.session.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    record("app_user.sign_out", tenant=tenant, user=actor.user, actor=actor, action=audit.ACCESS)
