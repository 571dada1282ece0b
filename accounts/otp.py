"""Staff second factor: TOTP devices and backup codes (django-otp), enrolment helpers.

A staff member has at most one confirmed ``TOTPDevice`` (the authenticator app) and one
``StaticDevice`` named "Backup codes" holding ten single-use codes. During enrolment the new
secret lives only in the session until a code made from it is confirmed, so an abandoned
enrolment leaves no row behind and a GET never writes to the database.
"""

from __future__ import annotations

import math
import re
import time
from base64 import b32encode
from binascii import unhexlify
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import segno
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.safestring import SafeString, mark_safe
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice, default_key

from accounts.models import User
from core.policy import policy

TOTP_DEVICE_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"
ISSUER = getattr(settings, "OTP_TOTP_ISSUER", "Admin Console")
TOTP_RE = re.compile(r"^\d{6}$")
BACKUP_RE = re.compile(r"^[a-z2-7]{8}$")
STEP = 30
DIGITS = 6
TOLERANCE = 1


def normalize_code(raw: object) -> str:
    """What people type: spaces and dashes between groups, any case."""
    return re.sub(r"[\s-]", "", str(raw or "")).lower()[:32]


def totp_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("-id").first()


def backup_device(user: User) -> StaticDevice | None:
    return StaticDevice.objects.filter(user=user, name=BACKUP_DEVICE_NAME).order_by("-id").first()


def has_totp(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def backup_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__name=BACKUP_DEVICE_NAME).count()


# --- Enrolment -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingSecret:
    """A TOTP secret being enrolled: hex for storage, base32 for people and apps."""

    hex_key: str

    @property
    def bin_key(self) -> bytes:
        return unhexlify(self.hex_key.encode())

    @property
    def base32(self) -> str:
        return b32encode(self.bin_key).decode().rstrip("=")

    @property
    def base32_grouped(self) -> str:
        b32 = self.base32
        return " ".join(b32[i : i + 4] for i in range(0, len(b32), 4))

    def config_url(self, email: str) -> str:
        label = quote(f"{ISSUER}:{email}")
        params = urlencode(
            {"secret": self.base32, "issuer": ISSUER, "algorithm": "SHA1", "digits": DIGITS,
             "period": STEP}
        )
        return f"otpauth://totp/{label}?{params}"

    def qr_svg(self, email: str) -> SafeString:
        """The provisioning URL as an inline SVG QR code, rendered here (no external service)."""
        qr = segno.make(self.config_url(email), error="m")
        svg = qr.svg_inline(scale=4, border=2, dark="#111527", light="#ffffff", omitsize=True,
                            title="QR code for your authenticator app")
        return mark_safe(svg)  # noqa: S308 - segno output: only our own escaped URL inside

    def match(self, code: str) -> int | None:
        """The time step a code belongs to, when it is valid now (one step of tolerance)."""
        if not TOTP_RE.match(code):
            return None
        totp = TOTP(self.bin_key, step=STEP, digits=DIGITS)
        totp.time = time.time()
        if totp.verify(int(code), tolerance=TOLERANCE):
            return totp.t()  # t() includes the drift that matched
        return None


def new_pending_secret() -> PendingSecret:
    return PendingSecret(default_key())


def pending_to_session(secret: PendingSecret) -> str:
    """The secret being enrolled as the session keeps it: encrypted (outbox.fields, a key derived
    from SECRET_KEY), so the session store (the database, Redis) never holds it in clear."""
    from outbox.fields import encrypt

    return encrypt(secret.hex_key)


def pending_from_session(value: object) -> PendingSecret | None:
    from outbox.fields import decrypt

    if isinstance(value, str):
        value = decrypt(value)  # a value without the encryption prefix reads as it is
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40}", value):
        return PendingSecret(value)
    return None


def totp_device_create(user: User, secret: PendingSecret, *, accepted_t: int) -> TOTPDevice:
    """Replace the user's authenticator with one built from the confirmed secret.

    ``accepted_t`` is the time step of the code that confirmed it: that code is spent.
    """
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice(
            user=user, name=TOTP_DEVICE_NAME, key=secret.hex_key, confirmed=True,
            step=STEP, digits=DIGITS, tolerance=TOLERANCE,
        )
        device.last_t = accepted_t
        device.save()
    return device


BACKUP_HASH_SALT = "accounts.otp.backup-code"


def hash_backup_code(code: str, *, secret: str | None = None) -> str:
    """What a ``StaticToken`` holds of a backup code: an HMAC keyed by ``SECRET_KEY`` (16 hex
    characters, what the column holds), never the code. A database copy without the key
    tells nothing, and even with it each of the 2^40 codes costs an HMAC to try."""
    return salted_hmac(BACKUP_HASH_SALT, normalize_code(code), secret=secret,
                       algorithm="sha256").hexdigest()[:16]


def backup_code_hashes(code: str) -> list[str]:
    """The code's hash under ``SECRET_KEY`` and each of ``SECRET_KEY_FALLBACKS`` (a rotated key
    does not void the codes people printed)."""
    secrets_ = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    return [hash_backup_code(code, secret=s) for s in secrets_]


def backup_codes_generate(user: User) -> list[str]:
    """Ten new single-use codes (the old ones stop working); returned once, to be shown once,
    and stored only hashed (``hash_backup_code``)."""
    count = policy().staff_backup_codes
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(
            user=user, name=BACKUP_DEVICE_NAME, defaults={"confirmed": True}
        )
        StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.token_set.all().delete()
        codes: set[str] = set()
        while len(codes) < count:
            codes.add(StaticToken.random_token())
        StaticToken.objects.bulk_create(StaticToken(device=device, token=hash_backup_code(c)) for c in codes)
    return sorted(codes)


def format_backup_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}" if len(code) == 8 else code


def devices_delete(user: User) -> int:
    """Remove every second factor of the user (they enrol again at their next sign-in)."""
    with transaction.atomic():
        n_totp, _ = TOTPDevice.objects.filter(user=user).delete()
        n_static, _ = StaticDevice.objects.filter(user=user).delete()
    return n_totp + n_static


# --- Verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    device: TOTPDevice | StaticDevice | None
    method: str  # "totp" | "backup_code" | ""
    backup_codes_left: int | None = None
    # django-otp's throttle refused to check the code (too soon after a failure): seconds to
    # wait. Not a wrong code, so it must not count toward the account's lockout.
    throttled_seconds: int = 0

    @property
    def ok(self) -> bool:
        return self.device is not None


def verify(user: User, raw_code: object, *, allow_backup: bool = True) -> Verification:
    """Check a TOTP code (accepted once: django-otp keeps ``last_t``) or a backup code (deleted
    on use). The device row is locked while checking, so two requests cannot spend one code."""
    code = normalize_code(raw_code)
    if TOTP_RE.match(code):
        with transaction.atomic():
            device = (
                TOTPDevice.objects.select_for_update()
                .filter(user=user, confirmed=True).order_by("-id").first()
            )
            if device is not None:
                wait = _throttle_wait(device)
                if wait:
                    return Verification(None, "totp", throttled_seconds=wait)
                if device.verify_token(code):
                    return Verification(device, "totp")
        return Verification(None, "totp")
    if allow_backup and BACKUP_RE.match(code):
        with transaction.atomic():
            static = (
                StaticDevice.objects.select_for_update()
                .filter(user=user, name=BACKUP_DEVICE_NAME).first()
            )
            if static is None:
                return Verification(None, "backup_code")
            wait = _throttle_wait(static)
            if wait:
                return Verification(None, "backup_code", throttled_seconds=wait)
            match = static.token_set.filter(token__in=backup_code_hashes(code)).first()
            if match is None:
                static.throttle_increment()
                return Verification(None, "backup_code")
            match.delete()
            static.throttle_reset()
            return Verification(static, "backup_code", static.token_set.count())
    return Verification(None, "")


def _throttle_wait(device: TOTPDevice | StaticDevice) -> int:
    """Seconds until django-otp's throttle lets the device check a code again (0: now)."""
    allowed, info = device.verify_is_allowed()
    if allowed or not info or not info.get("locked_until"):
        return 0
    return max(1, math.ceil((info["locked_until"] - timezone.now()).total_seconds()))

