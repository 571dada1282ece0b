from __future__ import annotations

import pytest
from django.test import Client

from outbox.services import mail_enqueue
from tests.accounts.helpers import enrol, sign_in_password
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db


def test_mail_outbox_lists_and_shows_messages_to_instance_admins(staff_factory):
    root = staff_factory("root@console.test", superuser=True)
    first = mail_enqueue(key="k1", to="a@example.com", subject="Older", body="x", kind="invite")
    second = mail_enqueue(key="k2", to="b@example.com", subject="<b>Welcome</b>",
                          body="Accept: http://127.0.0.1:8000/p/acme/accept/abc/\n<script>x</script>",
                          kind="staff_invite")
    c = login_verified(Client(), root)
    page = c.get("/mail/").content.decode()
    assert page.index("&lt;b&gt;Welcome&lt;/b&gt;") < page.index("Older")
    assert "<b>Welcome</b>" not in page
    detail = c.get(f"/mail/{second.pk}/").content.decode()
    assert '<a href="http://127.0.0.1:8000/p/acme/accept/abc/"' in detail
    assert "<script>x</script>" not in detail and "&lt;script&gt;" in detail
    assert c.get("/mail/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert c.get("/mail/?before=not-a-date").status_code == 200
    assert c.get("/mail/?before=2020-13-45T99:00:00").status_code == 200
    assert first.kind == "invite"


def test_mail_outbox_is_hidden_from_other_staff(staff_factory):
    member = staff_factory("member@console.test")
    message = mail_enqueue(key="k1", to="a@example.com", subject="S", body="x", kind="invite")
    c = login_verified(Client(), member)
    assert c.get("/mail/").status_code == 404
    assert c.get(f"/mail/{message.pk}/").status_code == 404


def test_django_admin_only_for_verified_instance_admins(staff_factory):
    root = staff_factory("root@console.test", superuser=True)
    member = staff_factory("member@console.test")
    # Anonymous: the console's sign-in, not the admin's own form.
    assert Client().get("/admin/")["Location"].startswith("/login/")
    # Password only: still refused.
    half = Client()
    enrol(root)
    sign_in_password(half, root.email)
    assert half.get("/admin/")["Location"] == "/login/verify/"
    # Verified, not an instance admin.
    c = login_verified(Client(), member)
    response = c.get("/admin/", follow=True)
    assert response.status_code == 403
    # Verified instance admin.
    c = login_verified(Client(), root)
    index = c.get("/admin/")
    assert index.status_code == 200
    for path in ("/admin/accounts/user/", "/admin/tenants/tenant/", "/admin/tenants/tenantadmin/",
                 "/admin/audit/auditentry/"):
        assert c.get(path).status_code == 200, path
    # The audit trail is read only; device secrets are not in the admin.
    assert c.get("/admin/audit/auditentry/add/").status_code == 403
    assert c.get("/admin/otp_totp/totpdevice/").status_code == 404
    assert c.get(f"/admin/accounts/user/{root.pk}/delete/").status_code == 403


@pytest.mark.django_db
def test_mail_search_and_filters(staff_factory, as_staff, acme):
    from outbox.models import OutboxMessage

    root = as_staff(staff_factory("root@console.test", superuser=True))
    for i, (to, kind, status) in enumerate([("ann@acme.test", "invite", "sent"), ("bob@acme.test", "recovery", "queued"),
                                            ("carol@other.test", "magic_link", "failed")]):
        OutboxMessage.objects.create(key=f"k{i}", kind=kind, tenant=acme, to=to, subject=f"Subject {to}",
                                     body="b", status=status)

    def rows(query: str) -> str:
        return root.get("/mail/?" + query).content.decode()

    assert "ann@acme.test" in rows("q=ann") and "bob@acme.test" not in rows("q=ann")
    page = rows("status=queued")
    assert "bob@acme.test" in page and "ann@acme.test" not in page
    page = rows("kind=magic_link&tenant=acme")
    assert "carol@other.test" in page and "bob@acme.test" not in page
    ignored = rows("status=bogus")
    assert "Some filters were ignored: status" in ignored and "ann@acme.test" in ignored
    assert "No mail matches these filters." in rows("q=nobody-at-all")
