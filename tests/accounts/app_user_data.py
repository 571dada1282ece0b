"""Test data for the users console: app users in a tenant database, fast (bulk_create)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import AppFactor, AppSession, AppUser
from tenants import db as tenant_db


def make_user(tenant, email: str, **fields) -> AppUser:
    fields.setdefault("email_confirmed_at", timezone.now())
    return AppUser.objects.using(tenant_db.using(tenant)).create(email=email, **fields)


def make_users(tenant, n: int, *, prefix: str = "user", domain: str = "example.test", **fields) -> list[AppUser]:
    """``n`` confirmed users, created one second apart (newest last), in bulk."""
    now = timezone.now()
    fields.setdefault("email_confirmed_at", now)
    users = [
        AppUser(email=f"{prefix}{i:05d}@{domain}", name=f"{prefix.title()} {i:05d}",
                created_at=now - timedelta(seconds=n - i), **fields)
        for i in range(n)
    ]
    return AppUser.objects.using(tenant_db.using(tenant)).bulk_create(users, batch_size=500)


def make_session(tenant, user: AppUser, **fields) -> AppSession:
    import secrets

    fields.setdefault("expires_at", timezone.now() + timedelta(days=7))
    return AppSession.objects.using(tenant_db.using(tenant)).create(
        user=user, token_hash=secrets.token_hex(32), **fields
    )


def make_factor(tenant, user: AppUser, **fields) -> AppFactor:
    fields.setdefault("confirmed_at", timezone.now())
    factor = AppFactor.objects.using(tenant_db.using(tenant)).create(user=user, key="00" * 20, **fields)
    AppUser.objects.using(tenant_db.using(tenant)).filter(pk=user.pk).update(mfa_enabled=True)
    return factor


def live_sessions(tenant, user: AppUser) -> int:
    return AppSession.objects.using(tenant_db.using(tenant)).filter(user=user, revoked_at__isnull=True).count()


def reload(tenant, user: AppUser) -> AppUser | None:
    return AppUser.objects.using(tenant_db.using(tenant)).filter(pk=user.pk).first()
