"""Sample data for a tenant: realistic app users, so a new operator sees the console at work.

Deterministic and idempotent: user ``i`` of tenant ``slug`` always has the same id
(``uuid5(slug, i)``), name, address, status and history, drawn from a generator seeded with the
slug. A run creates only the users that are missing (with their factors and sessions); running it
again creates nothing and changes nothing. Times are relative to the first run.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.app_users.services import deleted_email
from accounts.models import BANNED_FOREVER, AppFactor, AppSession, AppUser
from audit import services as audit
from tenants import db as tenant_db
from tenants.models import Tenant

NAMESPACE = uuid.UUID("6f1c3f4e-1b9e-4c55-9d7e-0d3c5ad2e001")
CHUNK = 1000
FIRST = ("Ada Alan Grace Linus Margaret Ken Barbara Dennis Frances Tim Radia Vint Hedy Edsger Karen Donald "
         "Sophie Noah Mia Lucas Emma Liam Olivia Elena Mateo Aisha Yuki Priya Chen Fatima Omar Ingrid Lars Zoe "
         "Hugo Clara Jonas Amara Kofi Leila Rafael Sven Anika Diego Nora Tariq Ines Mei Kenji Ana Paulo").split()
LAST = ("Lovelace Turing Hopper Torvalds Hamilton Thompson Liskov Ritchie Allen Berners-Lee Perlman Cerf Lamarr "
        "Dijkstra Jones Knuth Martin Schmidt Rossi Garcia Kowalski Nguyen Tanaka Okafor Haddad Larsen Silva "
        "Novak Fischer Dubois Moreau Patel Kim Costa Ivanova Mensah Jensen Ortiz Yilmaz Sato").split()
DOMAINS = ("gmail.com outlook.com proton.me fastmail.com yahoo.com icloud.com acme-corp.io globex.co "
           "initech.dev umbrella.health hooli.xyz").split()
AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
)
FACTOR_NAMES = ("iPhone authenticator", "1Password", "Google Authenticator", "Authy", "Bitwarden")
PLANS = ("free", "free", "free", "pro", "pro", "team", "enterprise")
BAN_REASONS = ("spam", "chargeback", "abuse reported by other users", "terms of service violation")


@dataclass(frozen=True)
class DemoResult:
    created: int
    existing: int
    sessions: int
    factors: int


def demo_id(slug: str, i: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{slug}:{i}")


def _person(rng: random.Random, slug: str, i: int, now: datetime) -> tuple[AppUser, list[AppSession], list[AppFactor]]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    pk = demo_id(slug, i)
    email = f"{first}.{last}{i}@{rng.choice(DOMAINS)}".lower()
    created = now - timedelta(days=rng.uniform(1, 730))
    kind = rng.choices(("active", "invited", "unconfirmed", "banned", "deleted"), (86, 5, 4, 3, 2))[0]
    user = AppUser(
        id=pk, email=email, name=f"{first} {last}", created_at=created, updated_at=created,
        role="admin" if rng.random() < 0.03 else "user",
        user_metadata={"plan": rng.choice(PLANS), "locale": rng.choice(("en", "de", "fr", "es", "ja"))},
        app_metadata={"source": rng.choice(("signup", "import", "invite"))},
    )
    sessions: list[AppSession] = []
    factors: list[AppFactor] = []
    if kind == "invited":
        user.invited_at = created
        return user, sessions, factors
    user.password = "!demo"  # an unusable hash: demo users cannot sign in with a password  # noqa: S105
    user.password_changed_at = created
    if kind == "unconfirmed":
        return user, sessions, factors
    user.email_confirmed_at = created + timedelta(minutes=rng.uniform(1, 600))
    last_seen = created + (now - created) * rng.betavariate(4, 1)  # most were here lately
    user.last_sign_in_at = last_seen
    if rng.random() < 0.3:
        user.mfa_enabled = True
        factors.append(AppFactor(id=uuid.uuid5(pk, "factor"), user_id=pk, friendly_name=rng.choice(FACTOR_NAMES),
                                 key=hashlib.sha256(f"{pk}:key".encode()).hexdigest()[:40],
                                 confirmed_at=user.email_confirmed_at, created_at=user.email_confirmed_at,
                                 last_used_at=last_seen))
    for k in range(rng.choice((0, 1, 1, 2, 3))):
        started = last_seen - timedelta(days=rng.uniform(0, 20) * k)
        ended = k > 0 and rng.random() < 0.6
        sessions.append(AppSession(
            id=uuid.uuid5(pk, f"session:{k}"), user_id=pk, created_at=started,
            last_seen_at=started + timedelta(minutes=rng.uniform(1, 240)),
            expires_at=started + timedelta(days=30), revoked_at=started + timedelta(hours=2) if ended else None,
            token_hash=hashlib.sha256(f"{pk}:session:{k}".encode()).hexdigest(),
            ip_address=f"203.0.113.{rng.randint(1, 254)}" if k % 2 else f"198.51.100.{rng.randint(1, 254)}",
            user_agent=rng.choice(AGENTS), aal="aal2" if factors else "aal1",
        ))
    if kind == "banned":
        user.banned_until = BANNED_FOREVER if rng.random() < 0.3 else now + timedelta(days=rng.choice((1, 7, 30)))
        user.ban_reason = rng.choice(BAN_REASONS)
        for session in sessions:
            session.revoked_at = session.revoked_at or now
    if kind == "deleted":  # GoTrue's soft delete: the row stays, what identifies the person goes
        user.deleted_at = last_seen
        user.email, user.name, user.password = deleted_email(pk), "", ""
        user.user_metadata, user.app_metadata, user.mfa_enabled = {}, {}, False
        sessions, factors = [], []
    return user, sessions, factors


def demo_data_load(*, actor: object | None, tenant: Tenant, users: int) -> DemoResult:
    """Create the missing ones of the tenant's first ``users`` demo users (see the module doc)."""
    alias = tenant_db.using(tenant)
    rng = random.Random(f"demo:{tenant.slug}")  # noqa: S311 - sample data, not secrets
    now = timezone.now()
    created = existing = n_sessions = n_factors = 0
    for start in range(0, users, CHUNK):
        batch = [_person(rng, tenant.slug, i, now) for i in range(start, min(users, start + CHUNK))]
        present = set(AppUser.objects.using(alias).filter(pk__in=[u.pk for u, _, _ in batch])
                      .values_list("pk", flat=True))
        fresh = [b for b in batch if b[0].pk not in present]
        taken = set(AppUser.objects.using(alias).filter(email__in=[u.email for u, _, _ in fresh])
                    .values_list("email", flat=True))  # a real user with that address keeps it
        fresh = [b for b in fresh if b[0].email not in taken]
        existing += len(batch) - len(fresh)
        with transaction.atomic(using=alias):
            AppUser.objects.using(alias).bulk_create([u for u, _, _ in fresh], batch_size=500)
            sessions = [s for _, ss, _ in fresh for s in ss]
            factors = [f for _, _, fs in fresh for f in fs]
            AppSession.objects.using(alias).bulk_create(sessions, batch_size=500)
            AppFactor.objects.using(alias).bulk_create(factors, batch_size=500)
        created, n_sessions, n_factors = created + len(fresh), n_sessions + len(sessions), n_factors + len(factors)
    if created:
        audit.record(event="demo_data.load", actor=actor, tenant=tenant, target_model=Tenant, target_pk=tenant.pk,
                     target_repr=tenant.slug, action=audit.CREATE,
                     data={"users": created, "sessions": n_sessions, "factors": n_factors})
    return DemoResult(created=created, existing=existing, sessions=n_sessions, factors=n_factors)
