"""The staff member behind a session and their second factors, from the shared cache.

Every console request needs the staff user (``AuthenticationMiddleware``) and the device that
verified the session (``OTPMiddleware``): two queries. Both come from one cache read instead
(``get_many``: one Redis round trip, or one query on the database cache), as a snapshot
``(generation, user, devices)`` stored under the user's id.

The snapshot is only believed while the user's *generation* key holds the value it was taken
under. Every change that can end or narrow a staff member's access gives the user a new
generation, before the row changes (``pre_save``/``pre_delete``, ``update``: a cache that
cannot take it refuses the change) and again once it has committed:

- ``post_save`` / ``post_delete`` of the user (deactivation, password, instance admin flag,
  time zone...) and of their TOTP and backup-code devices (enrolment, reset, removal, every
  verification: django-otp saves ``last_t`` and its throttle);
- ``User.objects.filter(...).update(...)`` and ``bulk_update`` (``StaffUserQuerySet``), which
  send no signal;
- a deleted user or device (``QuerySet.delete`` sends ``post_delete`` per row while a receiver
  is connected).

The new value is random, so a missing generation (evicted, expired, a flushed cache) can never
match an old snapshot. A reader takes the generation before reading the database: a change
committed in between has moved it on, and the snapshot it writes is stale on arrival, never
believed. The bump before the commit closes the window in which another request could read the
old rows under the new generation; the bump after it closes the one in which the old rows were
still all there was to read.

Tenant roles are not in the snapshot: the tenant and the member's role stay one query per
request (``tenants.access.visible_tenant_and_role``).

Snapshots hold only what verification needs of a device (its id, owner and confirmed flag:
never its secret) and the user row without its password hash: the password is a deferred field
of the user rebuilt from a snapshot (read from the database if something asks for it: a
current-password check, a password change), and the session's check uses the snapshot's
``session_hash`` (Django's HMAC of the hash under SECRET_KEY, what the session stores anyway).
A cache dump gives nothing to crack offline.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

SNAPSHOT_SECONDS = 300  # a snapshot is rebuilt at least this often
GENERATION_SECONDS = 86_400  # longer than a snapshot: an expired generation is a new one


def _gen_key(pk: object) -> str:
    return f"staff-gen:{pk}"


def _snap_key(pk: object) -> str:
    return f"staff-id:{pk}"


@dataclass(frozen=True)
class CachedDevice:
    """What django-otp's middleware checks of the device named in the session (no secret)."""

    persistent_id: str
    user_id: Any
    confirmed: bool


def bump(*pks: object, after_commit: bool = True) -> None:
    """Give these staff users a new generation now and again after the current commit."""
    if not pks:
        return

    def _set() -> None:
        cache.set_many({_gen_key(pk): secrets.token_hex(8) for pk in pks}, GENERATION_SECONDS)

    _set()
    if after_commit:
        transaction.on_commit(_set)


def _devices(user: Any) -> dict[str, CachedDevice]:
    from django_otp import devices_for_user

    return {d.persistent_id: CachedDevice(d.persistent_id, d.user_id, bool(d.confirmed))
            for d in devices_for_user(user, confirmed=None)}


def staff_user(pk: Any) -> Any:
    """The staff user with this id (``None`` when there is none), with ``_staff_devices``: their
    devices by persistent id, as ``OTPMiddleware`` looks them up."""
    from accounts.models import User

    gen_key, snap_key = _gen_key(pk), _snap_key(pk)
    try:
        got = cache.get_many([gen_key, snap_key])
    except Exception:  # noqa: BLE001 - the cache is down: the database answers, nothing is kept
        return User._default_manager.filter(pk=pk).first()
    generation, snapshot = got.get(gen_key), got.get(snap_key)
    if generation is not None and isinstance(snapshot, tuple) and len(snapshot) == 4 \
            and snapshot[0] == generation:
        _, row, session_hash, devices = snapshot
        cached: Any = User.from_db(DEFAULT_DB_ALIAS, list(row), list(row.values()))  # password deferred
        cached._session_auth_hash = session_hash
        cached._staff_devices = devices
        return cached
    if generation is None:
        cache.add(gen_key, secrets.token_hex(8), GENERATION_SECONDS)
        generation = cache.get(gen_key)
    user = User._default_manager.filter(pk=pk).first()
    if user is None:
        return None
    devices = _devices(user)
    if generation is not None:
        row = {f.attname: getattr(user, f.attname) for f in User._meta.concrete_fields if f.attname != "password"}
        cache.set(snap_key, (generation, row, user.get_session_auth_hash(), devices), SNAPSHOT_SECONDS)
    user._staff_devices = devices  # type: ignore[attr-defined]
    return user


def _on_user_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    bump(instance.pk)


def _on_device_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.user_id is not None:
        bump(instance.user_id)


# pre_save / pre_delete: a new generation before the row changes, so that a cache which cannot
# take it refuses the change (outside a transaction a save has committed by post_save: a bump
# failing there would leave the old snapshot believed once the cache answers again).
def _before_user_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    bump(instance.pk, after_commit=False)


def _before_device_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.user_id is not None:
        bump(instance.user_id, after_commit=False)


def connect() -> None:
    """Called by ``AccountsConfig.ready``."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import User

    for signal in (post_save, post_delete):
        signal.connect(_on_user_change, sender=User, dispatch_uid=f"identity.user.{signal is post_save}")
        for model in (TOTPDevice, StaticDevice):
            signal.connect(_on_device_change, sender=model,
                           dispatch_uid=f"identity.{model.__name__}.{signal is post_save}")
    for signal in (pre_save, pre_delete):
        signal.connect(_before_user_change, sender=User, dispatch_uid=f"identity.user.pre.{signal is pre_save}")
        for model in (TOTPDevice, StaticDevice):
            signal.connect(_before_device_change, sender=model,
                           dispatch_uid=f"identity.{model.__name__}.pre.{signal is pre_save}")
