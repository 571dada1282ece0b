"""No secret is ever written to the audit trail or to a log (SECURITY.md, "Audit"; issue 11's
"secrets scan of the audit table and the logs", kept as a test).

One journey through the real views and services makes every kind of secret the product
handles: staff passwords (old and new), a TOTP key and its codes, backup codes, app-user
passwords, invitation / recovery / magic-link tokens (also sent to link pages by GET, HEAD and
with a bad password, which django.request logs), portal session cookies, app-user factor keys
and recovery codes, a tenant API key and a staff personal token. Then every column of every
audit row and every line the configured log handlers wrote are searched for each of them.
"""

from __future__ import annotations

import io
import logging
import re
from base64 import b32encode
from binascii import unhexlify

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from accounts.models import AppFactor, AppUser
from audit.models import AuditEntry
from core.redaction import TokenMaskFilter
from outbox.models import OutboxMessage
from outbox.services import deliver
from tenants import db as tenant_db
from tests.accounts.helpers import STAFF_PASSWORD, code_for, enrol, sign_in_password

pytestmark = pytest.mark.django_db

NEW_STAFF_PASSWORD = "a-brand-new-passphrase-99"
APP_PASSWORD = "plum-kettle-harbour-42"
APP_PASSWORD_2 = "cobalt-lantern-orchard-5"


def _capturing_handlers():
    """Every configured handler that masks tokens (what the product writes), pointed at one buffer."""
    stream = io.StringIO()
    swapped = []
    for logger in [logging.getLogger(), *[logging.getLogger(n) for n in logging.root.manager.loggerDict]]:
        for handler in getattr(logger, "handlers", []):
            if any(isinstance(f, TokenMaskFilter) for f in handler.filters) and hasattr(handler, "setStream"):
                swapped.append((handler, handler.setStream(stream)))
    assert swapped, "no configured handler masks tokens"
    return stream, swapped


def _links(text: str) -> list[str]:
    return re.findall(r"https?://\S+/(?:p/\w+/(?:accept|recover|magic)|staff/accept)/([A-Za-z0-9_\-]+)/", text)


def _path(raw_link_text: str, kind: str) -> str:
    match = re.search(rf"https?://[^/\s]+(/p/acme/{kind}/[A-Za-z0-9_\-]+/)", raw_link_text)
    assert match, raw_link_text
    return match.group(1)


def test_no_secret_reaches_the_audit_trail_or_a_log(
    settings, staff_factory, make_tenant, django_capture_on_commit_callbacks
):
    settings.OUTBOX_KEEP_LINKS = True  # the test reads the links back from the outbox
    stream, swapped = _capturing_handlers()
    secrets: dict[str, str] = {}
    try:
        acme = make_tenant("acme")
        # --- Staff: password, TOTP, backup codes, password change, personal token -----------
        boss = staff_factory("boss@console.test", superuser=True, tenants={acme: "admin"})
        device, backup = enrol(boss)
        secrets["staff password"] = STAFF_PASSWORD
        secrets["staff TOTP key (hex)"] = device.key
        secrets["staff TOTP key (base32)"] = b32encode(unhexlify(device.key)).decode().rstrip("=")
        for i, code in enumerate(backup):
            secrets[f"backup code {i}"] = code
        staff = Client()
        sign_in_password(staff, boss.email, "wrong-password-123")
        sign_in_password(staff, boss.email)
        staff.post("/login/verify/", {"code": "000000"})
        device.refresh_from_db()
        device.throttling_failure_timestamp = None
        device.save()
        code = code_for(device)
        secrets["staff TOTP code"] = code
        assert staff.post("/login/verify/", {"code": code})["Location"] == "/"
        staff.post("/account/security/password/", {
            "current_password": "not-it-at-all-1", "password": NEW_STAFF_PASSWORD,
            "password_confirm": NEW_STAFF_PASSWORD})
        assert staff.post("/account/security/password/", {
            "current_password": STAFF_PASSWORD, "password": NEW_STAFF_PASSWORD,
            "password_confirm": NEW_STAFF_PASSWORD}).status_code == 302
        secrets["new staff password"] = NEW_STAFF_PASSWORD
        boss.refresh_from_db()
        secrets["staff password hash"] = boss.password
        from credentials.services import api_key_create, staff_token_create

        _, key_secret = api_key_create(actor=boss, tenant=acme, name="CI", role="viewer")
        _, pat = staff_token_create(actor=boss, name="laptop")
        secrets["tenant API key"] = key_secret
        secrets["personal token"] = pat
        # --- An app user: invitation, password, factor, recovery codes, links, sessions -----
        with django_capture_on_commit_callbacks(execute=True):
            invited = staff.post("/t/acme/users/invite/", {"email": "ann@acme.test", "name": "Ann",
                                                           "role": "user"})
        assert invited.status_code == 302, invited.content[:300]
        invite = OutboxMessage.objects.get(kind="invite", to="ann@acme.test").body
        secrets["invitation token"] = _links(invite)[0]
        accept = _path(invite, "accept")
        portal = Client()
        portal.head(accept)
        portal.get(accept)
        portal.post(accept, {"password1": "short", "password2": "short"})
        done = portal.post(accept, {"password1": APP_PASSWORD, "password2": APP_PASSWORD})
        assert done.status_code == 302, done.content[:500]
        secrets["app password"] = APP_PASSWORD
        secrets["portal session"] = portal.cookies["portal_session"].value
        from portal.services.common import PortalActor
        from portal.services.factors import factor_confirm, factor_enrol_start

        alias = tenant_db.using(acme)
        ann = AppUser.objects.using(alias).get(email="ann@acme.test")
        secrets["app password hash"] = ann.password
        pending = factor_enrol_start(actor=PortalActor(user=ann), tenant=acme)
        from django_otp.oath import TOTP

        app_code = f"{TOTP(unhexlify(pending.key), pending.step, 0, pending.digits, 0).token():06d}"
        recovery_codes = factor_confirm(actor=PortalActor(user=ann), tenant=acme, factor_id=pending.pk,
                                        code=app_code)
        secrets["app factor key"] = AppFactor.objects.using(alias).get(pk=pending.pk).key
        secrets["app TOTP code"] = app_code
        for i, rc in enumerate(recovery_codes):
            secrets[f"app recovery code {i}"] = rc
        for form in ("recover", "magic"):
            cache.clear()  # one link request a minute per account
            with django_capture_on_commit_callbacks(execute=True):
                Client().post(f"/p/acme/{form}/", {"email": "ann@acme.test"})
                deliver()
        for message in mail.outbox:
            for token in _links(message.body):
                secrets[f"link token {token[:6]}"] = token
        magic = _path(next(m.body for m in mail.outbox if "/magic/" in m.body), "magic")
        visitor = Client()
        visitor.head(magic)
        visitor.get(magic)
        visitor.post(magic)  # signs in (then the second factor is asked)
        Client().get(magic)  # used now: a 400 that django.request logs with its path
        recover = _path(next(m.body for m in mail.outbox if "/recover/" in m.body), "recover")
        Client().post(recover, {"password1": APP_PASSWORD_2, "password2": APP_PASSWORD_2})
        secrets["app password 2"] = APP_PASSWORD_2
        Client().get(recover)  # used: logged as a 400
        Client().get("/p/acme/recover/" + "Z" * 43 + "/")
    finally:
        for handler, old in swapped:
            handler.setStream(old)
    logs = stream.getvalue()
    trail = "\n".join(
        "|".join(str(v) for v in row) for row in AuditEntry.objects.values_list()
    )
    # The event outbox (webhooks, the API's feed) is built from the trail: it must be as clean.
    from events.models import Event

    trail += "\n" + "\n".join("|".join(str(v) for v in row) for row in Event.objects.values_list())
    assert Event.objects.filter(type="link.sent").exists() and Event.objects.filter(type="user.signed_in").exists()
    events = set(AuditEntry.objects.values_list("event", flat=True))
    assert {"staff.login_failed", "staff.otp_failed", "staff.login", "staff.password_change",
            "app_user.invitation_accepted", "app_user.recovery_requested",
            "app_user.magic_link_requested", "app_user.password_recovered"} <= events, events
    assert "Bad Request: /p/acme/" in logs
    assert len(secrets) > 35 and sum(n.startswith("link token") for n in secrets) >= 2
    for name, value in secrets.items():
        assert value, name
        assert value not in trail, f"{name} is in the audit trail"
        assert value not in logs, f"{name} is in a log line"
        if "code" in name and "-" in value:  # a recovery code is also typed without its dash
            assert value.replace("-", "") not in trail, name
