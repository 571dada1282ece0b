"""The tenancy plane refuses with the error family of ``core.errors``: stable codes, fields."""

from __future__ import annotations

import pytest

from accounts.app_users import tenant_settings as settings_services
from accounts.models import AppUser
from core.errors import Conflict, Invalid, NotFound, Refused, ServiceError
from tenants import db as tenant_db
from tenants import services
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(staff_factory):
    return staff_factory("root@console.test", superuser=True)


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"slug": "admin", "name": "X"}, "reserved_slug", "slug"),
        ({"slug": "Bad Slug", "name": "X"}, "invalid_slug", "slug"),
        ({"slug": "", "name": "X"}, "invalid_slug", "slug"),
        ({"slug": "ok", "name": "  "}, "required", "name"),
        ({"slug": "ok", "name": "x" * 201}, "too_long", "name"),
        ({"slug": "ok", "name": "Evil\u2067Name"}, "forbidden_characters", "name"),
        ({"slug": "ok", "name": "Tab\there"}, "forbidden_characters", "name"),
        ({"slug": "ok", "name": "X", "metadata": [1]}, "invalid_metadata", "metadata"),
        ({"slug": "ok", "name": "X", "metadata": {"a": float("nan")}}, "invalid_metadata", "metadata"),
    ],
)
def test_input_errors_are_invalid_with_their_field(kwargs, code, field):
    with pytest.raises(Invalid) as refused:
        services.tenant_register(actor=None, **kwargs)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert not Tenant.objects.exists()


def test_the_messages_people_see_are_kept():
    with pytest.raises(Invalid, match="Enter a name for the tenant."):
        services.tenant_register(actor=None, slug="ok", name="")
    with pytest.raises(Invalid, match="'admin' is reserved; choose another slug."):
        services.tenant_register(actor=None, slug="admin", name="X")


def test_state_conflicts_and_the_default_tenant(make_tenant):
    acme = make_tenant("acme")
    with pytest.raises(Conflict) as exists:
        services.tenant_register(actor=None, slug="acme", name="Again")
    assert (exists.value.code, exists.value.field) == ("exists", "slug")
    with pytest.raises(Conflict) as state:
        services.tenant_retry(actor=None, tenant=acme)
    assert state.value.code == "tenant_state"
    with pytest.raises(Conflict) as state:
        services.tenant_purge(actor=None, tenant=acme, confirm_slug="acme")
    assert state.value.code == "tenant_state"
    with pytest.raises(Invalid) as unknown:
        services.tenant_provision_step(actor=None, tenant=acme, step="format-disk")
    assert (unknown.value.code, unknown.value.field) == ("unknown_step", "step")
    services.tenant_delete(actor=None, tenant=acme)
    with pytest.raises(Conflict) as state:
        services.tenant_suspend(actor=None, tenant=acme)
    assert state.value.code == "tenant_state" and state.value.facts == {"status": "deleted"}
    default = make_tenant("main", is_default=True)
    for action in (services.tenant_delete,
                   lambda **kw: services.tenant_purge(confirm_slug="main", **kw)):
        with pytest.raises(Refused) as refused:
            action(actor=None, tenant=default)
        assert refused.value.code == "default_tenant"


def test_a_failed_provisioning_is_a_conflict_and_the_tenant_is_marked(monkeypatch):
    def broken(tenant):
        raise tenant_db.TenantDatabaseError("disk full")

    monkeypatch.setattr(tenant_db, "create_database", broken)
    with pytest.raises(Conflict) as failed:
        services.tenant_create(actor=None, slug="acme", name="Acme")
    assert failed.value.code == "provisioning_failed"
    assert "disk full" in failed.value.message
    assert Tenant.objects.get(slug="acme").status == Tenant.Status.FAILED


def test_a_closed_tenant_database_is_one_of_the_family(make_tenant):
    acme = make_tenant("acme")
    services.tenant_delete(actor=None, tenant=acme)
    acme.refresh_from_db()
    with pytest.raises(ServiceError) as closed:
        tenant_db.using(acme)
    assert isinstance(closed.value, Conflict) and closed.value.code == "tenant_database"


def test_migrate_all_reports_each_tenant(make_tenant, monkeypatch):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    real = tenant_db.migrate_database

    def flaky(tenant, **kwargs):
        if tenant.slug == "globex":
            raise tenant_db.TenantDatabaseError("server gone")
        return real(tenant, **kwargs)

    monkeypatch.setattr(tenant_db, "migrate_database", flaky)
    outcomes = {o.tenant.slug: o for o in services.tenant_migrate_all(actor=None, recheck=True)}
    assert outcomes["acme"].ok and outcomes["acme"].result["to"] == acme.schema_version
    assert not outcomes["globex"].ok and "server gone" in outcomes["globex"].error
    assert globex.slug in outcomes


def test_settings_refusals_carry_every_wrong_field(make_tenant, root):
    acme = make_tenant("acme")
    with pytest.raises(Invalid) as refused:
        settings_services.tenant_settings_update(actor=root, tenant=acme, values={
            "roles": ["user", "Bad Role"], "magic_link_minutes": "0", "sender_name": "A\u202eB",
        })
    error = refused.value
    assert error.code == "invalid_settings"
    assert set(error.fields) == {"roles", "magic_link_minutes", "sender_name"}
    assert all(m in error.messages for ms in error.fields.values() for m in ms)
    with pytest.raises(Invalid) as unknown:
        settings_services.tenant_settings_update(actor=root, tenant=acme, values={"colour": "red"})
    assert unknown.value.code == "unknown_setting"
    with pytest.raises(NotFound) as missing:
        settings_services.email_template_reset(actor=root, tenant=acme, kind="newsletter")
    assert missing.value.code == "unknown_template"
    with pytest.raises(Invalid) as template:
        settings_services.email_template_update(actor=root, tenant=acme, kind="invite",
                                                subject="Hi\u202e", body="no link here")
    assert template.value.code == "invalid_template"
    assert set(template.value.fields) == {"subject", "body"}


def test_a_role_still_held_cannot_be_removed(make_tenant, root):
    acme = make_tenant("acme")
    settings_services.tenant_settings_update(actor=root, tenant=acme,
                                             values={"roles": ["user", "admin", "editor"]})
    AppUser.objects.using(tenant_db.using(acme)).create(email="e@acme.test", role="editor")
    acme.refresh_from_db()
    with pytest.raises(Conflict) as held:
        settings_services.tenant_settings_update(actor=root, tenant=acme,
                                                 values={"roles": ["user", "admin"]})
    assert (held.value.code, held.value.field) == ("role_in_use", "roles")
    assert held.value.facts == {"roles": ["editor"]}
