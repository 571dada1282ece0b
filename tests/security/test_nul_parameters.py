"""NUL characters in a cursor or a search never reach the database (PostgreSQL answers them with
an error, which was a 500): the cursor is ignored, the search drops the character."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from accounts.app_users import services
from accounts.app_users.selectors import decode_cursor
from accounts.selectors import staff_list


def _cursor(value) -> str:
    raw = json.dumps({"o": "email", "s": 0, "v": value, "i": str(uuid.uuid4()), "d": "n"})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_a_cursor_holding_nul_is_treated_as_malformed():
    assert decode_cursor(_cursor("ann\x00"), sort="email") is None
    assert decode_cursor(_cursor("ann"), sort="email") is not None


@pytest.mark.django_db(transaction=True)
def test_users_list_with_a_nul_cursor_shows_the_first_page(make_tenant, staff_factory, as_staff,
                                                            client):
    tenant = make_tenant("acme")
    admin = staff_factory(superuser=True)
    services.app_user_create(actor=admin, tenant=tenant, email="ann@example.test", name="Ann",
                             password="a-long-password-1")
    as_staff(admin)
    response = client.get("/t/acme/users/", {"sort": "email", "cursor": _cursor("a\x00")})
    assert response.status_code == 200
    assert b"ann@example.test" in response.content


@pytest.mark.django_db
def test_staff_search_drops_nul(staff_factory, as_staff, client):
    admin = staff_factory("root@console.test", superuser=True)
    sql, params = staff_list(query="root\x00").query.sql_with_params()
    assert not any("\x00" in str(p) for p in params)
    as_staff(admin)
    response = client.get("/staff/", {"q": "root\x00"})
    assert response.status_code == 200
    assert b"root@console.test" in response.content
