"""TOTP factors of app users and their recovery codes.

The maths is django-otp's (``django_otp.oath.TOTP``); throttling follows django-otp's
``ThrottlingMixin`` (after n consecutive failures the next attempt waits 2^(n-1) seconds), and
like ``TOTPDevice`` a code is accepted once (``last_t``). django-otp's helpers are not used:
they always query the control database (ARCHITECTURE.md).
"""

from __future__ import annotations

import base64
import math
import re
import secrets
import time
from binascii import unhexlify
from datetime import timedelta
from urllib.parse import quote, urlencode

import segno
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django_otp.oath import TOTP
from django_otp.util import random_hex

from accounts.models import AppFactor, AppRecoveryCode, AppSession, AppUser
from core.errors import Conflict, Invalid, NotFound
from portal.services.common import PortalActor, record, refuse_while_impersonating
from tenants import db as tenant_db
from tenants.models import Tenant

TOLERANCE = 1  # steps either side, as TOTPDevice
THROTTLE_FACTOR = 1  # seconds; as OTP_TOTP_THROTTLE_FACTOR's default
MAX_THROTTLE_DELAY = 3600
RECOVERY_CODES = 10
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_TOTP_RE = re.compile(r"^\d{6,8}$")

def b32_secret(factor: AppFactor) -> str:
    return base64.b32encode(unhexlify(factor.key)).decode("ascii").rstrip("=")


def otpauth_uri(*, tenant: Tenant, user: AppUser, factor: AppFactor) -> str:
    label = quote(f"{tenant.name}:{user.email}")
    query = urlencode(
        {"secret": b32_secret(factor), "issuer": tenant.name, "digits": factor.digits,
         "period": factor.step, "algorithm": "SHA1"},
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def qr_data_uri(uri: str) -> str:
    """The QR code as an SVG data URI, made here: no external service sees the secret."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#111827")


def _hash_code(code: str) -> str:
    return salted_hmac("portal.recovery-code", code.strip().lower().replace("-", ""),
                       algorithm="sha256").hexdigest()


def _new_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def throttle_wait(factor: AppFactor) -> int:
    """Seconds until the factor checks a code again (0: now)."""
    if factor.throttling_failure_count > 0 and factor.throttling_failure_timestamp is not None:
        delay = (timezone.now() - factor.throttling_failure_timestamp).total_seconds()
        required = min(THROTTLE_FACTOR * 2 ** (factor.throttling_failure_count - 1), MAX_THROTTLE_DELAY)
        if delay < required:
            return max(1, math.ceil(required - delay))
    return 0


def _verify_is_allowed(factor: AppFactor) -> bool:
    return throttle_wait(factor) == 0


def totp_check(*, tenant: Tenant, factor_id, code: str) -> bool:
    """Verify a TOTP code against a factor, under a row lock: a code is accepted once."""
    code = (code or "").strip().replace(" ", "")
    alias = tenant_db.using(tenant)
    with transaction.atomic(using=alias):
        factor = AppFactor.objects.using(alias).select_for_update().filter(pk=factor_id).first()
        if factor is None:
            return False
        if not _verify_is_allowed(factor):
            return False
        verified = False
        if _TOTP_RE.match(code):
            totp = TOTP(unhexlify(factor.key), factor.step, 0, factor.digits, factor.drift)
            totp.time = time.time()
            verified = totp.verify(int(code), TOLERANCE, factor.last_t + 1)
        if verified:
            factor.last_t = totp.t()
            factor.drift = totp.drift
            factor.throttling_failure_count = 0
            factor.throttling_failure_timestamp = None
            factor.last_used_at = timezone.now()
        else:
            factor.throttling_failure_count += 1
            factor.throttling_failure_timestamp = timezone.now()
        factor.save(update_fields=[
            "last_t", "drift", "throttling_failure_count", "throttling_failure_timestamp",
            "last_used_at",
        ])
        return verified


def confirmed_factor(*, tenant: Tenant, user: AppUser) -> AppFactor | None:
    return (
        AppFactor.objects.using(tenant_db.using(tenant))
        .filter(user_id=user.pk, confirmed_at__isnull=False)
        .order_by("created_at")
        .first()
    )


def pending_factor(*, tenant: Tenant, user: AppUser) -> AppFactor | None:
    return (
        AppFactor.objects.using(tenant_db.using(tenant))
        .filter(user_id=user.pk, confirmed_at__isnull=True)
        .order_by("-created_at")
        .first()
    )


THROTTLED = "Too many wrong codes in a row: wait {seconds} seconds, then enter the current code."


def second_factor_check(*, tenant: Tenant, user: AppUser, code: str) -> str | None:
    """A TOTP code or an unused recovery code of the user. Returns which one matched, or None.

    A TOTP code inside the throttle's back-off is not checked at all: ``Invalid`` (code
    ``throttled``), which is no failure (the right code after wrong ones must not lock)."""
    code = (code or "").strip()
    factor = confirmed_factor(tenant=tenant, user=user)
    if factor is None:
        return None
    if _TOTP_RE.match(code.replace(" ", "")):
        wait = throttle_wait(factor)
        if wait:
            raise Invalid(THROTTLED.format(seconds=wait), code="throttled", field="code")
        return "totp" if totp_check(tenant=tenant, factor_id=factor.pk, code=code) else None
    if not code or len(code) > 40:
        return None
    used = (
        AppRecoveryCode.objects.using(tenant_db.using(tenant))
        .filter(factor__user_id=user.pk, factor__confirmed_at__isnull=False,
                code_hash=_hash_code(code), used_at__isnull=True)
        .update(used_at=timezone.now())
    )
    return "recovery_code" if used else None


def factor_enrol_start(*, actor: PortalActor, tenant: Tenant) -> AppFactor:
    """Create an unconfirmed TOTP factor (replacing any earlier unconfirmed one)."""
    refuse_while_impersonating(actor, tenant, "factor_enrol")
    user = actor.user
    alias = tenant_db.using(tenant)
    with transaction.atomic(using=alias):
        if confirmed_factor(tenant=tenant, user=user) is not None:
            raise Conflict("You already have an authenticator. Remove it first to set up another.",
                           code="factor_exists")
        AppFactor.objects.using(alias).filter(user_id=user.pk, confirmed_at__isnull=True).delete()
        return AppFactor.objects.using(alias).create(
            user_id=user.pk, kind="totp", friendly_name="Authenticator app", key=random_hex(20)
        )


def factor_confirm(*, actor: PortalActor, tenant: Tenant, factor_id, code: str) -> list[str]:
    """Confirm a pending factor with a code from the app. Returns the ten recovery codes, which
    are shown once and stored only hashed. The current session becomes ``aal2``."""
    refuse_while_impersonating(actor, tenant, "factor_confirm")
    user = actor.user
    alias = tenant_db.using(tenant)
    factor = (
        AppFactor.objects.using(alias)
        .filter(pk=factor_id, user_id=user.pk, confirmed_at__isnull=True,
                created_at__gt=timezone.now() - timedelta(hours=1))
        .first()
    )
    if factor is None:
        raise Conflict("This set-up has expired. Start again.", code="enrolment_expired")
    if not totp_check(tenant=tenant, factor_id=factor.pk, code=code):
        raise Invalid("That code is not right. Check the time on your device and try again.",
                      code="bad_code", field="code")
    codes = _new_codes()
    now = timezone.now()
    with transaction.atomic(using=alias):
        won = AppFactor.objects.using(alias).filter(pk=factor.pk, confirmed_at__isnull=True).update(
            confirmed_at=now
        )
        if not won:
            raise Conflict("This set-up has already been completed.", code="already_confirmed")
        AppRecoveryCode.objects.using(alias).bulk_create(
            [AppRecoveryCode(factor_id=factor.pk, code_hash=_hash_code(c)) for c in codes]
        )
        AppUser.objects.using(alias).filter(pk=user.pk).update(mfa_enabled=True, updated_at=now)
        if actor.session is not None:
            AppSession.objects.using(alias).filter(pk=actor.session.pk).update(aal="aal2")
    record("app_user.factor_enrolled", tenant=tenant, user=user, actor=actor,
           data={"factor": str(factor.pk), "kind": "totp"})
    return codes


def factor_remove(*, actor: PortalActor, tenant: Tenant, factor_id, password: str) -> None:
    """Remove one of the actor's own factors; the current password is asked again."""
    refuse_while_impersonating(actor, tenant, "factor_remove")
    user = actor.user
    alias = tenant_db.using(tenant)
    fresh = AppUser.objects.using(alias).get(pk=user.pk)
    from portal.services.auth import check_current_password  # auth imports this module

    check_current_password(tenant=tenant, user=fresh, password=password)
    with transaction.atomic(using=alias):
        deleted, _ = AppFactor.objects.using(alias).filter(pk=factor_id, user_id=user.pk).delete()
        if not deleted:
            raise NotFound("No such factor.", code="factor_not_found")
        still = AppFactor.objects.using(alias).filter(user_id=user.pk, confirmed_at__isnull=False).exists()
        AppUser.objects.using(alias).filter(pk=user.pk).update(mfa_enabled=still, updated_at=timezone.now())
    record("app_user.factor_removed", tenant=tenant, user=user, actor=actor,
           data={"factor": str(factor_id)})
