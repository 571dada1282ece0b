"""Finding 1 of issue 11: Unicode spellings of one address (``ſ`` U+017F, ``ı`` U+0131, whose upper
case is ASCII) no longer dodge lockouts and rate limits nor make twin accounts. The attacks need
PostgreSQL, whose ``UPPER()`` maps these letters to ASCII (SQLite's is ASCII-only), so they run
there; the canonical form itself and the migration's rules are checked everywhere."""

from __future__ import annotations

import importlib
from itertools import product

import pytest
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from accounts.app_users import services as app_users
from accounts.models import AppUser, User
from audit.models import AuditEntry
from core.emails import canonical_email, clean_email
from core.errors import Conflict, Invalid
from core.policy import policy
from outbox.models import OutboxMessage
from portal.services.sessions import COOKIE_NAME
from tenants import db as tenant_db
from tests.accounts.helpers import STAFF_PASSWORD, enrol, sign_in_password
from tests.expect import raises

pytestmark = pytest.mark.django_db

APP_PASSWORD = "plum-kettle-harbour-42"
# 16 spellings of victim@sec.test that PostgreSQL's UPPER() folds onto the same address.
SPELLINGS = [f"v{i1}ct{i2}m@{s1}ec.te{s2}t" for i1, i2, s1, s2 in product("iı", "iı", "sſ", "sſ")]


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def _app_user(tenant, email, **fields):
    return AppUser.objects.using(tenant_db.using(tenant)).create(
        email=email, name="Victim", password=make_password(APP_PASSWORD),
        email_confirmed_at=timezone.now(), **fields,
    )


# --- The canonical form --------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", SPELLINGS + ["VICTIM@SEC.TEST", " Victim@Sec.Test ",
                                                  "ｖｉｃｔｉｍ@ｓｅｃ.ｔｅｓｔ", "victim@\u017fec.test"])
def test_every_spelling_has_one_canonical_form(spelling):
    assert canonical_email(spelling) == "victim@sec.test"


def test_the_canonical_form_is_stored_and_non_ascii_local_parts_are_refused():
    assert clean_email("ſiſi@X.test") == "sisi@x.test"
    assert clean_email("ann@München.de") == "ann@xn--mnchen-3ya.de"  # IDNA A-label
    assert canonical_email("ann@xn--mnchen-3ya.de") == canonical_email("ann@münchen.de")
    with raises(Invalid, code="invalid_email"):
        clean_email("straße@x.test")  # Django's syntax check already refuses it
    with raises(Invalid, code="non_ascii_email"):
        clean_email("İda@x.test")  # passes the syntax check, folds to i + U+0307


def test_the_migration_canonicalizes_rows_and_stops_on_twins(acme):
    migration = importlib.import_module("accounts.migrations.0006_canonical_emails")
    alias = tenant_db.using(acme)
    rows = AppUser.objects.using(alias)
    odd = rows.create(email="Victim@ſec.test")  # written by hand: not the canonical form
    rows.create(email="ann@x.test")
    migration._canonicalize(AppUser, alias, "App users")
    assert rows.get(pk=odd.pk).email == "victim@sec.test"
    rows.create(email="ſiſi@x.test")
    twin = rows.create(email="sisi@x.test")
    with pytest.raises(RuntimeError, match=str(twin.pk)):
        migration._canonicalize(AppUser, alias, "App users")
    assert set(rows.values_list("email", flat=True)) == {"victim@sec.test", "ann@x.test", "ſiſi@x.test",
                                                         "sisi@x.test"}


def test_one_canonical_address_one_row_in_the_database(acme, staff_factory):
    alias = tenant_db.using(acme)
    AppUser.objects.using(alias).create(email="sisi@x.test")
    with pytest.raises(IntegrityError), transaction.atomic(using=alias):
        AppUser.objects.using(alias).create(email="sisi@x.test")
    staff_factory("ſiſi@console.test")
    assert User.objects.get().email == "sisi@console.test"
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(email="sisi@console.test")


# --- The attacks of the issue (PostgreSQL) -------------------------------------------------------


@pytest.mark.postgres
def test_a_locked_staff_account_stays_locked_under_every_spelling(client, staff_factory):
    user = staff_factory("victim@sec.test")
    enrol(user)
    for _ in range(policy().staff_lockout_failures):
        sign_in_password(client, "victim@sec.test", "not-the-password-1")
    for spelling in SPELLINGS:
        response = sign_in_password(client, spelling, STAFF_PASSWORD)
        # Not the TOTP step: the answer of a wrong password, no half-open session.
        assert response.status_code == 200, spelling
        assert "_auth_user_id" not in client.session
    assert not AuditEntry.objects.filter(event="staff.login_failed").exclude(
        object_pk=str(user.pk)).exists()


@pytest.mark.postgres
def test_a_locked_portal_account_stays_locked_under_every_spelling(client, acme):
    _app_user(acme, "victim@sec.test")
    for _ in range(policy().portal_lockout_failures):
        client.post(f"/p/{acme.slug}/login/", {"email": "victim@sec.test", "password": "wrong-wrong-1"})
    for spelling in SPELLINGS:
        response = client.post(f"/p/{acme.slug}/login/", {"email": spelling, "password": APP_PASSWORD})
        assert response.status_code == 400 and b"Too many failed attempts" in response.content, spelling
        assert COOKIE_NAME not in response.cookies


@pytest.mark.postgres
def test_seven_spellings_get_one_recovery_mail_in_a_minute(client, acme):
    _app_user(acme, "victim@sec.test")
    for spelling in SPELLINGS[:7]:
        response = client.post(f"/p/{acme.slug}/recover/", {"email": spelling})
        assert response.status_code == 302 and response["Location"].endswith("/recover/sent/")
    assert OutboxMessage.objects.filter(kind="recovery").count() == 1
    assert OutboxMessage.objects.get(kind="recovery").to == "victim@sec.test"


@pytest.mark.postgres
def test_no_twin_invitation_beside_an_existing_user(acme, staff_factory):
    support = staff_factory("helper@console.test", tenants={acme: "support"})
    victim = _app_user(acme, "sisi@x.test")
    for twin in ("ſiſi@x.test", "SIſI@X.TEST", "sisi@x.teſt"):
        with raises(Conflict, code="email_taken"):
            app_users.app_user_invite(actor=support, tenant=acme, email=twin, name="Twin")
    alias = tenant_db.using(acme)
    assert list(AppUser.objects.using(alias).values_list("pk", flat=True)) == [victim.pk]
    # Nor by editing another user's address onto the victim's.
    other = _app_user(acme, "other@x.test")
    admin = staff_factory("boss@console.test", tenants={acme: "admin"})
    with raises(Conflict, code="email_taken"):
        app_users.app_user_update(actor=admin, tenant=acme, user_id=other.pk, email="ſiſi@x.test")
    with connections[alias].cursor() as cur:  # the index refuses a twin written past the services
        cur.execute("SELECT count(*) FROM accounts_appuser WHERE email = 'sisi@x.test'")
        assert cur.fetchone() == (1,)
