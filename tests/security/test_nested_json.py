"""Hostile JSON nested thousands of levels deep gets a validation message, not a 500."""

from __future__ import annotations

import pytest

from accounts.app_users import services
from accounts.app_users.services import METADATA_MAX_DEPTH, clean_metadata
from core.errors import Invalid
from tenants import db as tenant_db
from tests.expect import raises


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [900, 5000])
def test_clean_metadata_refuses_deep_documents(depth):
    with raises(Invalid, "too_deep", match="nested"):
        clean_metadata(_nested(depth))


def test_clean_metadata_still_accepts_the_maximum_depth():
    assert clean_metadata(_nested(METADATA_MAX_DEPTH - 1))


@pytest.mark.django_db(transaction=True)
def test_user_metadata_and_invite_answer_without_server_error(make_tenant, staff_factory, as_staff,
                                                              client):
    tenant = make_tenant("acme")
    admin = staff_factory(superuser=True)
    user = services.app_user_create(actor=admin, tenant=tenant, email="ann@example.test",
                                    name="Ann", password="a-long-password-1")
    as_staff(admin)
    response = client.post(f"/t/acme/users/{user.pk}/metadata/", {"user_metadata": _nested(900)})
    assert response.status_code == 302
    user.refresh_from_db(using=tenant_db.using(tenant))
    assert user.user_metadata == {}
    response = client.post("/t/acme/users/invite/", {
        "email": "bob@example.test", "name": "Bob", "role": "user", "user_metadata": _nested(5000),
    })
    assert response.status_code == 200
    assert b"nested" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [100, 900, 1600])
def test_tenant_metadata_too_deep_is_refused(staff_factory, as_staff, client, depth):
    from tenants.models import Tenant

    as_staff(staff_factory(superuser=True))
    response = client.post("/tenants/new/", {"slug": "deep", "name": "Deep",
                                             "metadata": _nested(depth)})
    assert response.status_code == 400
    assert b"nested" in response.content
    assert not Tenant.objects.filter(slug="deep").exists()
