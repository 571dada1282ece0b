"""Every single-user action: happy path, refusal (nothing changed, refusal audited), foreign id,
audit entry; plus the input rules (email, name, role, metadata, password) and tenant settings."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.utils import timezone

from accounts.app_users import services as svc
from accounts.models import BANNED_FOREVER, ActionToken, AppFactor, AppSession, AppUser
from audit.models import AuditEntry
from core.errors import Conflict, Invalid, NotFound, Refused
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tests.accounts.app_user_data import live_sessions, make_factor, make_session, make_user, reload
from tests.expect import raises

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(acme):
    return make_user(acme, "ann@example.test", name="Ann", user_metadata={"team": "a"})


def events(tenant, event, user=None):
    qs = AuditEntry.objects.filter(tenant=tenant, event=event)
    if user is not None:
        qs = qs.filter(object_pk=str(user.pk))
    return list(qs)


def assert_refused(tenant, user=None, code="role"):
    refusals = events(tenant, "app_user.refused", user)
    assert refusals, "the refusal is audited"
    assert refusals[-1].additional_data["error_code"] == code and refusals[-1].additional_data["action"]


# --- Create and invite -------------------------------------------------------------------------


def test_create_with_initial_password_hashes_it_and_never_audits_it(acme, admin):
    user = svc.app_user_create(actor=admin, tenant=acme, email=" New@Example.TEST ", name="New",
                               role="user", password="a-long-password-1", confirmed=True)
    stored = reload(acme, user)
    assert stored.email == "new@example.test"
    assert stored.password != "a-long-password-1" and check_password("a-long-password-1", stored.password)
    assert stored.password_changed_at is not None and stored.email_confirmed_at is not None
    assert stored.status == "active"
    (entry,) = events(acme, "app_user.create", user)
    assert entry.actor == admin and "password" not in json.dumps(entry.changes)
    assert "a-long-password-1" not in json.dumps([entry.changes, entry.additional_data])


def test_create_obeys_the_tenant_password_minimum(acme, admin):
    acme.settings = {"password_min_length": 20}
    acme.save()
    with raises(Invalid, "too_short", match="at least 20"):
        svc.app_user_create(actor=admin, tenant=acme, email="x@example.test", password="only-15-chars-x")
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()


def test_create_with_invitation_mails_a_portal_link(acme, admin):
    user = svc.app_user_create(actor=admin, tenant=acme, email="inv@example.test", send_invitation=True)
    assert reload(acme, user).status == "invited"
    mail = OutboxMessage.objects.get(kind="invite", to="inv@example.test")
    assert "/p/acme/accept/" in mail.body and mail.tenant == acme
    assert ActionToken.objects.using(tenant_db.using(acme)).filter(user=user, purpose="invite").count() == 1


def test_create_is_admin_only(acme, support):
    with raises(Refused, "role"):
        svc.app_user_create(actor=support, tenant=acme, email="x@example.test", password="x" * 20)
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()
    assert_refused(acme)


def test_invite_creates_an_invited_user_with_tenant_lifetime(acme, support):
    acme.settings = {"invitation_hours": 2}
    acme.save()
    user = svc.app_user_invite(actor=support, tenant=acme, email="Zed@Example.test", name="Zed",
                               user_metadata='{"plan": "pro"}')
    stored = reload(acme, user)
    assert stored.status == "invited" and stored.invited_by == support.pk
    assert stored.user_metadata == {"plan": "pro"}
    token = ActionToken.objects.using(tenant_db.using(acme)).get(user=user, purpose="invite")
    assert timedelta(hours=1, minutes=59) < token.expires_at - token.created_at <= timedelta(hours=2)
    mail = OutboxMessage.objects.get(kind="invite", to="zed@example.test")
    assert "2 hours" in mail.body and token.token_hash not in mail.body
    (entry,) = events(acme, "app_user.invite", user)
    assert entry.actor == support


def test_invite_refuses_a_disallowed_domain(acme, support):
    acme.settings = {"allowed_email_domains": ["acme.test"]}
    acme.save()
    with raises(Invalid, "domain_not_allowed", match="not allowed"):
        svc.app_user_invite(actor=support, tenant=acme, email="out@elsewhere.test")
    svc.app_user_invite(actor=support, tenant=acme, email="in@ACME.test")
    assert list(AppUser.objects.using(tenant_db.using(acme)).values_list("email", flat=True)) == ["in@acme.test"]


def test_invite_refuses_an_existing_address_whatever_its_case(acme, support, ann):
    with raises(Conflict, "email_taken", match="already exists"):
        svc.app_user_invite(actor=support, tenant=acme, email="ANN@example.test")
    assert OutboxMessage.objects.count() == 0


def test_support_cannot_invite_into_a_protected_role(acme, support, admin):
    with raises(Refused, "protected_user", match="protected"):
        svc.app_user_invite(actor=support, tenant=acme, email="root@example.test", role="admin")
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()
    svc.app_user_invite(actor=admin, tenant=acme, email="root@example.test", role="admin")


def test_viewer_cannot_invite(acme, viewer):
    with raises(Refused, "role"):
        svc.app_user_invite(actor=viewer, tenant=acme, email="x@example.test")
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()


def test_resend_invitation_replaces_the_link(acme, support):
    user = svc.app_user_invite(actor=support, tenant=acme, email="inv@example.test")
    first = ActionToken.objects.using(tenant_db.using(acme)).get(user=user)
    svc.app_user_invitation_resend(actor=support, tenant=acme, user_id=user.pk)
    tokens = ActionToken.objects.using(tenant_db.using(acme)).filter(user=user).order_by("created_at")
    assert tokens.count() == 2 and tokens.get(pk=first.pk).revoked_at is not None
    assert OutboxMessage.objects.filter(kind="invite", to="inv@example.test").count() == 2
    assert len(events(acme, "app_user.invitation_resend", user)) == 1


def test_resend_refuses_an_accepted_user(acme, support, ann):
    with raises(Conflict, "not_invited", match="pending invitation"):
        svc.app_user_invitation_resend(actor=support, tenant=acme, user_id=ann.pk)
    assert OutboxMessage.objects.count() == 0


def test_revoke_invitation_removes_the_never_accepted_user(acme, support, viewer):
    user = svc.app_user_invite(actor=support, tenant=acme, email="inv@example.test")
    with raises(Refused, "role"):
        svc.app_user_invitation_revoke(actor=viewer, tenant=acme, user_id=user.pk)
    assert reload(acme, user) is not None
    svc.app_user_invitation_revoke(actor=support, tenant=acme, user_id=user.pk)
    assert reload(acme, user) is None
    (entry,) = events(acme, "app_user.invitation_revoke", user)
    assert entry.changes["email"] == ["inv@example.test", None]


# --- Input rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("email, code", [
    ("", "required"), ("not-an-email", "invalid_email"), ("a@b", "invalid_email"),
    ("x" * 250 + "@example.test", "too_long"), ("ann\x00@example.test", "invalid_email"),
    ("ann@exa mple.test", "invalid_email"), ("<script>@example.test", "invalid_email"),
    ("ann\u202e@example.test", "invalid_email"), ("gone@deleted.invalid", "reserved_email"),
])
def test_bad_email_addresses_are_refused(acme, admin, email, code):
    with raises(Invalid, code) as info:
        svc.app_user_create(actor=admin, tenant=acme, email=email)
    assert info.value.field == "email"
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()


@pytest.mark.parametrize("name, code", [
    ("x" * 151, "too_long"), ("Ann\x00", "forbidden_characters"), ("Evil\u202eTxt", "forbidden_characters"),
    ("line\nbreak", "forbidden_characters"), ("tab\tname", "forbidden_characters"),
    ("bom\ufeffname", "forbidden_characters"), (42, "not_text"),
])
def test_bad_names_are_refused(acme, admin, ann, name, code):
    with raises(Invalid, code) as info:
        svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, name=name)
    assert info.value.field == "name"
    assert reload(acme, ann).name == "Ann"


def test_markup_in_a_name_is_kept_as_text(acme, admin, ann):
    svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, name="<b>Ann</b>")
    assert reload(acme, ann).name == "<b>Ann</b>"


@pytest.mark.parametrize("metadata, message, code", [
    ("[1, 2]", "JSON object", "not_object"),
    ("{not json", "not valid JSON", "invalid_json"),
    ('{"n": NaN}', "not valid JSON", "invalid_json"),
    (json.dumps({"big": "x" * 20_000}), "larger than", "too_large"),
    ('{"a": "\\u0000"}', "NUL", "forbidden_characters"),
    (json.dumps({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}), "nested", "too_deep"),
])
def test_metadata_must_be_a_small_json_object(acme, admin, ann, metadata, message, code):
    with raises(Invalid, code, match=message) as info:
        svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, user_metadata=metadata)
    assert info.value.field == "user_metadata"
    assert reload(acme, ann).user_metadata == {"team": "a"}


def test_unknown_role_is_refused(acme, admin, ann):
    with raises(Invalid, "unknown_role", match="Unknown role"):
        svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, role="wizard")
    assert reload(acme, ann).role == "user"


# --- Edit --------------------------------------------------------------------------------------


def test_update_changes_profile_and_metadata_and_audits_the_diff(acme, admin, ann):
    svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, name="Ann Lee", role="admin",
                        user_metadata='{"team": "b"}', app_metadata={"plan": "pro"})
    stored = reload(acme, ann)
    assert (stored.name, stored.email, stored.role) == ("Ann Lee", "ann@example.test", "admin")
    assert stored.user_metadata == {"team": "b"} and stored.app_metadata == {"plan": "pro"}
    (entry,) = events(acme, "app_user.update", ann)
    assert entry.changes["name"] == ["Ann", "Ann Lee"]
    assert entry.changes["role"] == ["user", "admin"]
    # A new email is a pending change confirmed from the new address: tests/accounts/test_email_change.py


def test_update_refuses_an_email_another_user_has(acme, admin, ann):
    make_user(acme, "bob@example.test")
    with raises(Conflict, "email_taken", match="already has"):
        svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, email="BOB@example.test")
    assert reload(acme, ann).email == "ann@example.test"


def test_support_cannot_edit(acme, support, ann):
    with raises(Refused, "role"):
        svc.app_user_update(actor=support, tenant=acme, user_id=ann.pk, name="Hacked", role="admin")
    assert reload(acme, ann).name == "Ann"
    assert_refused(acme, ann)


def test_a_foreign_id_is_not_found(acme, globex, admin):
    other = make_user(globex, "gina@example.test")
    with raises(NotFound, "not_found"):
        svc.app_user_update(actor=admin, tenant=acme, user_id=other.pk, name="x")
    with raises(NotFound, "not_found"):
        svc.app_user_ban(actor=admin, tenant=acme, user_id=other.pk, until=BANNED_FOREVER)
    assert reload(globex, other).name == "" and reload(globex, other).banned_until is None


def test_confirm_email(acme, admin, support):
    user = make_user(acme, "unc@example.test", email_confirmed_at=None)
    assert user.status == "unconfirmed"
    with raises(Refused, "role"):
        svc.app_user_confirm_email(actor=support, tenant=acme, user_id=user.pk)
    svc.app_user_confirm_email(actor=admin, tenant=acme, user_id=user.pk)
    assert reload(acme, user).status == "active"
    assert len(events(acme, "app_user.email_confirm", user)) == 1
    with raises(Conflict, "already_confirmed", match="already confirmed"):
        svc.app_user_confirm_email(actor=admin, tenant=acme, user_id=user.pk)


# --- Ban -------------------------------------------------------------------------------------


def test_ban_ends_every_session_at_once_and_lifts_itself(acme, admin, ann):
    for _ in range(3):
        make_session(acme, ann)
    recovery = svc.app_user_send_recovery(actor=admin, tenant=acme, user_id=ann.pk)
    until = svc.ban_until_for("24h")
    svc.app_user_ban(actor=admin, tenant=acme, user_id=ann.pk, until=until, reason="spam")
    stored = reload(acme, ann)
    assert stored.status == "banned" and stored.ban_reason == "spam"
    assert abs((stored.banned_until - timezone.now()) - timedelta(hours=24)) < timedelta(minutes=1)
    assert live_sessions(acme, ann) == 0
    assert ActionToken.objects.using(tenant_db.using(acme)).get(pk=recovery.pk).revoked_at is not None
    (entry,) = events(acme, "app_user.ban", ann)
    assert entry.additional_data["sessions_ended"] == 3 and "banned_until" in entry.changes
    # When the ban runs out, the user is simply active again.
    AppUser.objects.using(tenant_db.using(acme)).filter(pk=ann.pk).update(
        banned_until=timezone.now() - timedelta(seconds=1))
    assert reload(acme, ann).status == "active" and not reload(acme, ann).is_banned


def test_ban_indefinitely_and_until_a_date(acme, admin, ann):
    svc.app_user_ban(actor=admin, tenant=acme, user_id=ann.pk, until=svc.ban_until_for("forever"))
    assert reload(acme, ann).banned_until == BANNED_FOREVER and reload(acme, ann).is_banned_forever
    later = timezone.now() + timedelta(days=3)
    assert svc.ban_until_for("until", until=later) == later
    with raises(Invalid, "in_past", match="future"):
        svc.ban_until_for("until", until=timezone.now() - timedelta(hours=1))
    with raises(Invalid, "unknown_duration"):
        svc.ban_until_for("3 fortnights")


def test_support_cannot_ban(acme, support, ann):
    make_session(acme, ann)
    with raises(Refused, "role"):
        svc.app_user_ban(actor=support, tenant=acme, user_id=ann.pk, until=BANNED_FOREVER)
    assert reload(acme, ann).banned_until is None and live_sessions(acme, ann) == 1
    assert_refused(acme, ann)


def test_nobody_bans_the_app_user_with_their_own_email(acme, admin):
    me = make_user(acme, "BOSS@console.test")
    with raises(Refused, "self_action", match="own email"):
        svc.app_user_ban(actor=admin, tenant=acme, user_id=me.pk, until=BANNED_FOREVER)
    assert reload(acme, me).banned_until is None


def test_unban(acme, admin, support, ann):
    svc.app_user_ban(actor=admin, tenant=acme, user_id=ann.pk, until=BANNED_FOREVER, reason="x")
    with raises(Refused, "role"):
        svc.app_user_unban(actor=support, tenant=acme, user_id=ann.pk)
    svc.app_user_unban(actor=admin, tenant=acme, user_id=ann.pk)
    stored = reload(acme, ann)
    assert stored.banned_until is None and stored.ban_reason == "" and stored.status == "active"
    assert len(events(acme, "app_user.unban", ann)) == 1
    with raises(Conflict, "not_banned", match="not banned"):
        svc.app_user_unban(actor=admin, tenant=acme, user_id=ann.pk)


# --- Links and sessions ------------------------------------------------------------------------


def test_send_recovery_with_sign_out_everywhere(acme, support, ann):
    acme.settings = {"recovery_minutes": 15}
    acme.save()
    make_session(acme, ann)
    token = svc.app_user_send_recovery(actor=support, tenant=acme, user_id=ann.pk, sign_out=True)
    assert token.purpose == "recovery"
    assert token.expires_at - token.created_at == timedelta(minutes=15)
    assert live_sessions(acme, ann) == 0
    mail = OutboxMessage.objects.get(kind="recovery", to="ann@example.test")
    assert "/p/acme/recover/" in mail.body and "15 minutes" in mail.body
    (entry,) = events(acme, "app_user.recovery_sent", ann)
    assert entry.additional_data["signed_out"] is True


def test_send_recovery_keeps_sessions_unless_asked(acme, support, ann):
    make_session(acme, ann)
    svc.app_user_send_recovery(actor=support, tenant=acme, user_id=ann.pk)
    assert live_sessions(acme, ann) == 1


def test_links_are_refused_to_banned_users_and_viewers(acme, admin, viewer, ann):
    with raises(Refused, "role"):
        svc.app_user_send_recovery(actor=viewer, tenant=acme, user_id=ann.pk)
    svc.app_user_ban(actor=admin, tenant=acme, user_id=ann.pk, until=BANNED_FOREVER)
    with raises(Conflict, "banned", match="banned"):
        svc.app_user_send_magic_link(actor=admin, tenant=acme, user_id=ann.pk)
    assert OutboxMessage.objects.count() == 0


def test_magic_link(acme, support, ann):
    token = svc.app_user_send_magic_link(actor=support, tenant=acme, user_id=ann.pk)
    assert token.expires_at - token.created_at == timedelta(minutes=10)
    mail = OutboxMessage.objects.get(kind="magic_link")
    assert "/p/acme/magic/" in mail.body
    assert len(events(acme, "app_user.magic_link_sent", ann)) == 1


def test_sign_out_one_session_or_all(acme, support, ann):
    first, second, third = (make_session(acme, ann) for _ in range(3))
    assert svc.app_user_sign_out(actor=support, tenant=acme, user_id=ann.pk, session_id=first.pk) == 1
    assert live_sessions(acme, ann) == 2
    with raises(Conflict, "session_ended", match="already ended"):
        svc.app_user_sign_out(actor=support, tenant=acme, user_id=ann.pk, session_id=first.pk)
    assert svc.app_user_sign_out(actor=support, tenant=acme, user_id=ann.pk) == 2
    assert live_sessions(acme, ann) == 0
    assert len(events(acme, "app_user.sign_out", ann)) == 2


def test_sign_out_cannot_reach_another_users_session(acme, support, ann):
    bob = make_user(acme, "bob@example.test")
    bobs = make_session(acme, bob)
    with raises(NotFound, "session_not_found"):
        svc.app_user_sign_out(actor=support, tenant=acme, user_id=ann.pk, session_id=bobs.pk)
    assert live_sessions(acme, bob) == 1


def test_support_cannot_touch_a_protected_user(acme, support, admin):
    root = make_user(acme, "root@example.test", role="admin")
    make_session(acme, root)
    with raises(Refused, "protected_user", match="protected"):
        svc.app_user_sign_out(actor=support, tenant=acme, user_id=root.pk)
    assert live_sessions(acme, root) == 1
    svc.app_user_sign_out(actor=admin, tenant=acme, user_id=root.pk)
    assert live_sessions(acme, root) == 0


# --- Factors -----------------------------------------------------------------------------------


def test_remove_one_factor_then_all_keeps_mfa_enabled_in_sync(acme, admin, ann):
    phone = make_factor(acme, ann, friendly_name="Phone")
    make_factor(acme, ann, friendly_name="Laptop")
    make_session(acme, ann)
    svc.app_user_factor_remove(actor=admin, tenant=acme, user_id=ann.pk, factor_id=phone.pk)
    assert reload(acme, ann).mfa_enabled is True and live_sessions(acme, ann) == 0
    assert svc.app_user_factor_remove(actor=admin, tenant=acme, user_id=ann.pk) == 1
    assert reload(acme, ann).mfa_enabled is False
    assert not AppFactor.objects.using(tenant_db.using(acme)).filter(user=ann).exists()
    entries = events(acme, "app_user.factor_remove", ann)
    assert len(entries) == 2 and all("key" not in json.dumps(e.additional_data) for e in entries)


def test_support_cannot_remove_factors(acme, support, ann):
    make_factor(acme, ann)
    with raises(Refused, "role"):
        svc.app_user_factor_remove(actor=support, tenant=acme, user_id=ann.pk)
    assert AppFactor.objects.using(tenant_db.using(acme)).filter(user=ann).count() == 1


# --- Delete ------------------------------------------------------------------------------------


def test_soft_delete_has_gotrue_semantics(acme, admin, ann):
    make_factor(acme, ann)
    make_session(acme, ann)
    svc.app_user_send_recovery(actor=admin, tenant=acme, user_id=ann.pk)
    AppUser.objects.using(tenant_db.using(acme)).filter(pk=ann.pk).update(password="argon2$hash")
    svc.app_user_delete(actor=admin, tenant=acme, user_id=ann.pk)
    stored = reload(acme, ann)
    assert stored is not None and stored.status == "deleted"
    assert stored.email == svc.deleted_email(ann.pk) == f"deleted-{ann.pk.hex}@deleted.invalid"
    assert (stored.name, stored.password, stored.user_metadata, stored.mfa_enabled) == ("", "", {}, False)
    alias = tenant_db.using(acme)
    assert not AppFactor.objects.using(alias).filter(user=ann).exists()
    assert not AppSession.objects.using(alias).filter(user=ann).exists()
    assert not ActionToken.objects.using(alias).filter(user=ann).exists()
    (entry,) = events(acme, "app_user.soft_delete", ann)
    assert entry.object_repr == "ann@example.test"  # the history keeps who it was
    with raises(Conflict, "already_deleted", match="deleted"):
        svc.app_user_delete(actor=admin, tenant=acme, user_id=ann.pk)
    with raises(Conflict, "deleted", match="deleted"):
        svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, name="Back")
    # The address is free again.
    svc.app_user_invite(actor=admin, tenant=acme, email="ann@example.test")


def test_hard_delete_removes_the_row_and_keeps_the_history(acme, admin, ann):
    make_session(acme, ann)
    svc.app_user_delete(actor=admin, tenant=acme, user_id=ann.pk, hard=True)
    assert reload(acme, ann) is None
    assert not AppSession.objects.using(tenant_db.using(acme)).exists()
    (entry,) = events(acme, "app_user.delete", ann)
    assert entry.changes["email"] == ["ann@example.test", None]


def test_support_cannot_delete(acme, support, ann):
    with raises(Refused, "role"):
        svc.app_user_delete(actor=support, tenant=acme, user_id=ann.pk)
    assert reload(acme, ann).deleted_at is None
    assert_refused(acme, ann)
