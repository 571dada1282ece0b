"""The security policy's numbers (../shared/SECURITY.md), in one place.

Code and tests read them through ``policy()``; a deployment overrides any of them with the
``SECURITY_POLICY`` setting (a JSON object in the environment variable of the same name).
"""

from __future__ import annotations

import dataclasses
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclasses.dataclass(frozen=True)
class Policy:
    # Staff (console)
    staff_lockout_failures: int = 5
    staff_lockout_minutes: int = 15
    staff_password_min_length: int = 12
    staff_backup_codes: int = 10
    staff_session_idle_minutes: int = 30
    staff_session_absolute_hours: int = 12
    recent_otp_minutes: int = 15  # destructive actions need an OTP check this recent
    # App users (tenant portal)
    invitation_hours: int = 72
    recovery_minutes: int = 60
    magic_link_minutes: int = 10
    token_bytes: int = 32  # 256 bits from `secrets`; the policy floor is 128
    portal_lockout_failures: int = 10
    portal_lockout_minutes: int = 15
    link_requests_per_minute: int = 1
    link_requests_per_hour: int = 5
    impersonation_minutes: int = 60
    portal_session_days: int = 7  # an app-user session lasts a week at most
    portal_session_idle_hours: int = 24  # and ends after a day without a request
    # Lists and batches
    batch_max_users: int = 10_000
    exact_count_cap: int = 10_000
    # Background jobs (issue 13)
    job_max_users: int = 5_000_000  # one job's snapshot at most (no limit below a million)
    job_inline_max: int = 200  # a confirmed batch this small runs in the request itself
    job_preview_minutes: int = 15  # a preview older than this cannot be started: preview again
    job_undo_days: int = 7  # a finished ban, unban or role change can be undone this long
    job_schedule_max_days: int = 30  # how far ahead a job can be scheduled
    # The admin API (issue 12)
    api_rate_per_minute: int = 500  # per credential, both surfaces together
    api_rate_per_hour: int = 5_000
    api_auth_failures_per_minute: int = 30  # per client address
    api_token_max_days: int = 90  # a staff personal token lives at most this long
    api_body_max_bytes: int = 1024 * 1024  # request bodies above this answer 413
    api_idempotency_hours: int = 24  # an Idempotency-Key's answer is kept this long


@cache
def policy() -> Policy:
    overrides = dict(getattr(settings, "SECURITY_POLICY", {}) or {})
    known = {f.name for f in dataclasses.fields(Policy)}
    unknown = set(overrides) - known
    if unknown:
        raise ImproperlyConfigured(f"Unknown SECURITY_POLICY keys: {sorted(unknown)}")
    result = Policy(**overrides)
    if result.token_bytes < 16:
        raise ImproperlyConfigured("SECURITY_POLICY token_bytes must be at least 16 (128 bits).")
    return result
