"""Helpers for the staff-access tests (importable from any test package)."""

from __future__ import annotations

import time

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import otp
from tests.conftest import STAFF_PASSWORD

__all__ = ["STAFF_PASSWORD", "code_for", "code_from_base32", "enrol", "sign_in_password"]


def code_for(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The device's code now (or ``steps_ahead`` periods later; tolerance accepts one)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def code_from_base32(secret: str, *, steps_ahead: int = 0) -> str:
    from base64 import b32decode

    padded = secret.replace(" ", "").upper()
    padded += "=" * (-len(padded) % 8)
    totp = TOTP(b32decode(padded), 30, 0, 6, 0)
    totp.time = time.time() + steps_ahead * 30
    return f"{totp.token():06d}"


def enrol(user) -> tuple[TOTPDevice, list[str]]:
    """A confirmed authenticator and ten backup codes, as after a real enrolment."""
    secret = otp.new_pending_secret()
    device = otp.totp_device_create(user, secret, accepted_t=-1)
    return device, otp.backup_codes_generate(user)


def sign_in_password(client, email: str, password: str = STAFF_PASSWORD, **extra):
    return client.post("/login/", {"email": email, "password": password, **extra})
