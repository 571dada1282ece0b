"""A step-up (recent OTP for destructive actions) is a privilege change: the session key changes."""

from __future__ import annotations

import pytest

from tests.accounts.helpers import code_for
from tests.conftest import login_verified


@pytest.mark.django_db
def test_reverify_issues_a_new_session_key(client, staff_factory):
    user = staff_factory()
    login_verified(client, user, otp_age_seconds=3600)
    device = user.totpdevice_set.get()
    before = client.session.session_key
    response = client.post("/account/reverify/", {"code": code_for(device), "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session.session_key != before
    # Still signed in and now recent: a destructive action goes through without step-up.
    assert client.post("/account/security/backup-codes/").status_code == 200
