"""The portal services' refusals, by class and stable code (what an API or a log keys on); the
pages keep showing their messages (the other portal tests)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AppUser
from core.errors import Conflict, Invalid, NotFound, Refused
from core.policy import policy
from portal.models import Impersonation
from portal.services import auth, factors, impersonation, sessions
from portal.services.common import PortalActor
from tenants import db as tenant_db
from tests.expect import raises
from tests.portal.conftest import APP_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(staff_factory, tenant):
    return staff_factory("admin@console.test", tenants={tenant: "admin"})


def test_sign_in_refusals(tenant, app_user):
    with raises(Refused, "invalid_credentials", match="Wrong email or password"):
        auth.sign_in_password(tenant=tenant, email="ann@acme.test", password="nope", client=auth.Client())
    AppUser.objects.using(tenant_db.using(tenant)).filter(pk=app_user.pk).update(
        banned_until=timezone.now() + timedelta(days=1))
    with raises(Refused, "banned"):
        auth.sign_in_password(tenant=tenant, email="ann@acme.test", password=APP_PASSWORD, client=auth.Client())
    for _ in range(policy().portal_lockout_failures):
        with pytest.raises(Refused):
            auth.sign_in_password(tenant=tenant, email="x@acme.test", password="nope", client=auth.Client())
    with raises(Refused, "locked", match="Too many failed attempts"):
        auth.sign_in_password(tenant=tenant, email="X@acme.test ", password="nope", client=auth.Client())


def test_a_closed_tenant_and_a_weak_password(tenant, app_user):
    with raises(Invalid, "weak_password") as info:
        auth.validate_app_password(tenant=tenant, password="12345678", user=app_user)
    assert info.value.field is None and info.value.fields["password"]  # every reason, on the field
    tenant.status = tenant.Status.SUSPENDED
    tenant.save()
    with raises(Conflict, "tenant_closed"):
        auth.link_request(tenant=tenant, email="ann@acme.test", purpose="recovery")


def test_own_account_refusals(tenant, app_user, admin):
    actor = PortalActor(user=app_user)
    with raises(Invalid, "bad_password") as info:
        auth.password_change(actor=actor, tenant=tenant, current="wrong", new="violet-anchor-meadow-77")
    assert info.value.field == "password"
    with raises(Invalid, "forbidden_characters"):
        auth.profile_update(actor=actor, tenant=tenant, name="Evil\u202eName")
    with raises(NotFound, "factor_not_found"):
        factors.factor_remove(actor=actor, tenant=tenant, factor_id=uuid.uuid4(), password=APP_PASSWORD)
    as_staff = PortalActor(user=app_user, impersonator=admin)
    with raises(Refused, "impersonating"):
        factors.factor_enrol_start(actor=as_staff, tenant=tenant)
    with raises(Refused, "impersonating"):
        sessions.session_end(actor=as_staff, tenant=tenant, scope="global")


def test_session_refusals_say_why(tenant, app_user):
    with raises(Refused, "none"):
        sessions.session_validate(tenant=tenant, raw="not-a-session")
    session, raw = sessions.session_create(tenant=tenant, user=app_user)
    sessions.sessions_revoke_all(tenant=tenant, user=app_user)
    with raises(Refused, "revoked") as info:
        sessions.session_validate(tenant=tenant, raw=raw)
    assert info.value.facts == {"session_id": session.pk, "impersonated": False}


def test_impersonation_refusals(tenant, app_user, admin, staff_factory, app_user_factory):
    support = staff_factory("support@console.test", tenants={tenant: "support"})
    start = {"tenant": tenant, "app_user_id": app_user.pk, "reason": "Ticket #42"}
    with raises(Refused, "role"):
        impersonation.impersonation_start(actor=support, **start)
    with raises(Invalid, "too_short") as info:
        impersonation.impersonation_start(actor=admin, **{**start, "reason": " x "})
    assert info.value.field == "reason"
    with raises(Invalid, "forbidden_characters"):
        impersonation.impersonation_start(actor=admin, **{**start, "reason": "Ticket \u202e42"})
    with raises(NotFound, "not_found"):
        impersonation.impersonation_start(actor=admin, **{**start, "app_user_id": uuid.uuid4()})
    me = app_user_factory(tenant, "ADMIN@console.test")
    with raises(Refused, "self_action"):
        impersonation.impersonation_start(actor=admin, **{**start, "app_user_id": me.pk})
    unconfirmed = app_user_factory(tenant, "new@acme.test", confirmed=False)
    with raises(Conflict, "unconfirmed"):
        impersonation.impersonation_start(actor=admin, **{**start, "app_user_id": unconfirmed.pk})
    impersonation.impersonation_start(actor=admin, **start)
    with raises(Conflict, "already_running"):
        impersonation.impersonation_start(actor=admin, **start)
    assert Impersonation.objects.count() == 1
    with raises(NotFound, "not_found"):
        impersonation.impersonation_end(actor=admin, tenant=tenant, impersonation_id=uuid.uuid4())
    with raises(Refused, "role"):
        impersonation.impersonation_end(actor=support, tenant=tenant,
                                        impersonation_id=Impersonation.objects.get().pk)
