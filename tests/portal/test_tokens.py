"""Link tokens through the portal: single use under concurrency, lifetime, purpose, tenant."""

from __future__ import annotations

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connections
from django.utils import timezone

from accounts.models import ActionToken, AppSession, AppUser
from accounts.tokens import token_issue
from core.errors import Invalid
from portal.services import auth as services
from tenants import db as tenant_db
from tests.expect import raises
from tests.portal.conftest import APP_PASSWORD

NEW_PASSWORD = "violet-anchor-meadow-77"


def issue(tenant, user, purpose):
    return token_issue(tenant=tenant, user=user, purpose=purpose)[1]


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_redemptions_one_success_one_session(tenant, app_user):
    raw = issue(tenant, app_user, ActionToken.Purpose.MAGIC_LINK)
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def redeem():
        try:
            barrier.wait(timeout=30)
            try:
                services.magic_link_sign_in(tenant=tenant, raw=raw, client=services.Client())
                result = "ok"
            except Invalid as exc:
                result = "refused" if exc.code == "link_invalid" else f"error: {exc!r}"
            except Exception as exc:  # noqa: BLE001 - any other outcome fails the test below
                result = f"error: {exc!r}"
            with lock:
                outcomes.append(result)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=redeem) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["ok"] + ["refused"] * 19, outcomes
    assert AppSession.objects.using(tenant_db.using(tenant)).filter(user_id=app_user.pk).count() == 1
    token = ActionToken.objects.using(tenant_db.using(tenant)).get(user_id=app_user.pk)
    assert token.used_at is not None


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_invitation_accepts_set_one_password(tenant, app_user_factory):
    user = app_user_factory(tenant, "new@acme.test", confirmed=False, password=None,
                            invited_at=timezone.now())
    raw = issue(tenant, user, ActionToken.Purpose.INVITE)
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def accept():
        try:
            barrier.wait(timeout=30)
            try:
                services.invitation_accept(tenant=tenant, raw=raw, password=NEW_PASSWORD,
                                           client=services.Client())
                outcomes.append("ok")
            except Invalid as exc:
                outcomes.append("refused" if exc.code == "link_invalid" else f"error: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=accept) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["ok"] + ["refused"] * 19
    assert AppSession.objects.using(tenant_db.using(tenant)).filter(user_id=user.pk).count() == 1


def test_magic_link_works_once_through_the_portal(client, tenant, app_user):
    raw = issue(tenant, app_user, ActionToken.Purpose.MAGIC_LINK)
    url = f"/p/{tenant.slug}/magic/{raw}/"
    page = client.get(url)  # opening the link does not use it (mail scanners fetch links)
    assert page.status_code == 200 and b"Continue as" in page.content
    assert client.get(url).status_code == 200
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == f"/p/{tenant.slug}/account/"
    assert client.get(f"/p/{tenant.slug}/account/").status_code == 200
    again = client.post(url)
    assert again.status_code == 400 and b"invalid or has expired" in again.content
    assert AppSession.objects.using(tenant_db.using(tenant)).filter(user_id=app_user.pk).count() == 1


def test_a_token_after_its_lifetime_is_refused(client, tenant, app_user):
    raw = issue(tenant, app_user, ActionToken.Purpose.MAGIC_LINK)
    later = timezone.now() + timedelta(minutes=10, seconds=1)  # magic links live 10 minutes
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert client.get(f"/p/{tenant.slug}/magic/{raw}/").status_code == 400
        assert client.post(f"/p/{tenant.slug}/magic/{raw}/").status_code == 400
    # A recovery link whose row says it expired an hour ago.
    raw = issue(tenant, app_user, ActionToken.Purpose.RECOVERY)
    past = timezone.now() - timedelta(hours=2)
    ActionToken.objects.using(tenant_db.using(tenant)).filter(purpose="recovery").update(
        created_at=past, expires_at=past + timedelta(minutes=60)
    )
    response = client.post(f"/p/{tenant.slug}/recover/{raw}/",
                           {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 400
    assert AppUser.objects.using(tenant_db.using(tenant)).get(pk=app_user.pk).password_changed_at is None
    assert not AppSession.objects.using(tenant_db.using(tenant)).exists()


def test_a_token_of_one_purpose_is_refused_for_another(client, tenant, app_user):
    recovery = issue(tenant, app_user, ActionToken.Purpose.RECOVERY)
    for path in ("magic", "accept"):
        assert client.get(f"/p/{tenant.slug}/{path}/{recovery}/").status_code == 400
    assert client.post(f"/p/{tenant.slug}/magic/{recovery}/").status_code == 400
    response = client.post(f"/p/{tenant.slug}/accept/{recovery}/",
                           {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 400
    # ...and the recovery link itself is still good for recovery.
    assert client.get(f"/p/{tenant.slug}/recover/{recovery}/").status_code == 200
    with raises(Invalid, "link_invalid"):
        services.magic_link_sign_in(tenant=tenant, raw=recovery, client=services.Client())


def test_a_token_of_another_tenant_is_refused(client, tenant, app_user, make_tenant, app_user_factory):
    globex = make_tenant("globex")
    app_user_factory(globex, app_user.email)  # same address, other tenant
    raw = issue(tenant, app_user, ActionToken.Purpose.MAGIC_LINK)
    assert client.get(f"/p/globex/magic/{raw}/").status_code == 400
    assert client.post(f"/p/globex/magic/{raw}/").status_code == 400
    assert not AppSession.objects.using(tenant_db.using(globex)).exists()
    assert client.post(f"/p/{tenant.slug}/magic/{raw}/").status_code == 302


def test_changing_the_password_voids_every_outstanding_link(client, tenant, app_user):
    magic = issue(tenant, app_user, ActionToken.Purpose.MAGIC_LINK)
    recovery = issue(tenant, app_user, ActionToken.Purpose.RECOVERY)
    response = client.post(f"/p/{tenant.slug}/recover/{recovery}/",
                           {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert client.post(f"/p/{tenant.slug}/magic/{magic}/").status_code == 400


def test_a_bad_password_does_not_use_up_the_invitation(client, tenant, app_user_factory):
    user = app_user_factory(tenant, "new@acme.test", confirmed=False, password=None,
                            invited_at=timezone.now())
    raw = issue(tenant, user, ActionToken.Purpose.INVITE)
    url = f"/p/{tenant.slug}/accept/{raw}/"
    bad = client.post(url, {"password1": "short", "password2": "short"})
    assert bad.status_code == 200 and b"too short" in bad.content
    ok = client.post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert ok.status_code == 302
    user = AppUser.objects.using(tenant_db.using(tenant)).get(pk=user.pk)
    assert user.email_confirmed_at is not None and user.password_changed_at is not None
    assert user.status == "active"
    assert client.get(f"/p/{tenant.slug}/account/").status_code == 200
    assert client.get(url).status_code == 400  # used


def test_links_of_banned_or_deleted_users_are_refused(client, tenant, app_user):
    raw = issue(tenant, app_user, ActionToken.Purpose.MAGIC_LINK)
    AppUser.objects.using(tenant_db.using(tenant)).filter(pk=app_user.pk).update(
        banned_until=timezone.now() + timedelta(days=1)
    )
    response = client.post(f"/p/{tenant.slug}/magic/{raw}/")
    assert response.status_code == 400 and b"banned" in response.content
    AppUser.objects.using(tenant_db.using(tenant)).filter(pk=app_user.pk).update(
        banned_until=None, deleted_at=timezone.now()
    )
    assert client.post(f"/p/{tenant.slug}/magic/{raw}/").status_code == 400
    assert not AppSession.objects.using(tenant_db.using(tenant)).exists()


def test_signing_in_with_the_old_password_fails_after_recovery(client, tenant, app_user):
    raw = issue(tenant, app_user, ActionToken.Purpose.RECOVERY)
    client.post(f"/p/{tenant.slug}/recover/{raw}/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    client.cookies.clear()
    old = client.post(f"/p/{tenant.slug}/login/", {"email": app_user.email, "password": APP_PASSWORD})
    assert old.status_code == 400
    new = client.post(f"/p/{tenant.slug}/login/", {"email": app_user.email, "password": NEW_PASSWORD})
    assert new.status_code == 302


pytestmark = pytest.mark.django_db
