from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import login_verified


@pytest.fixture
def staff(staff_factory, acme):
    """``staff("admin")`` → a client signed in as a staff member with that role in acme."""
    made = {}

    def sign_in(role: str, **kwargs) -> Client:
        if role not in made:
            made[role] = staff_factory(f"{role}@console.test", tenants={acme: role})
        return login_verified(Client(), made[role], **kwargs)

    return sign_in
