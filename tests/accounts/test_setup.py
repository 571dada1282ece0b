from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client

from accounts.models import SetupLock, User
from accounts.services.staff import setup_first_admin
from audit.models import AuditEntry
from core.errors import Conflict
from tenants import db as tenant_db
from tenants.models import Tenant

GOOD_PASSWORD = "a-long-and-unusual-passphrase-7"


@pytest.fixture
def drop_default_tenant():
    yield
    for tenant in Tenant.objects.filter(is_default=True):
        tenant_db.drop_database(tenant)


@pytest.mark.django_db
def test_setup_page_creates_the_first_instance_admin_and_the_default_tenant(client, drop_default_tenant):
    page = client.get("/setup/")
    assert page.status_code == 200
    assert b"Create the first instance admin" in page.content
    response = client.post("/setup/", {
        "email": "Root@Example.com", "name": "Root", "password": GOOD_PASSWORD,
        "password_confirm": GOOD_PASSWORD,
    })
    assert response.status_code == 302
    assert response["Location"] == "/login/?email=root%40example.com"
    user = User.objects.get()
    assert (user.email, user.is_superuser, user.is_active) == ("root@example.com", True, True)
    assert user.check_password(GOOD_PASSWORD)
    assert Tenant.objects.get(is_default=True).status == Tenant.Status.ACTIVE
    entry = AuditEntry.objects.get(event="staff.setup")
    assert "password" not in (entry.changes or {})
    # From now on setup does not exist.
    assert client.get("/setup/").status_code == 404
    assert client.post("/setup/", {"email": "x@example.com"}).status_code == 404
    assert client.get("/")["Location"] == "/login/"


@pytest.mark.django_db
@pytest.mark.parametrize("data, message", [
    ({"email": "not-an-email", "name": "R", "password": GOOD_PASSWORD,
      "password_confirm": GOOD_PASSWORD}, b"Enter a valid email address."),
    ({"email": "r@example.com", "name": "R", "password": "short",
      "password_confirm": "short"}, b"too short"),
    ({"email": "r@example.com", "name": "R", "password": GOOD_PASSWORD,
      "password_confirm": GOOD_PASSWORD + "x"}, b"do not match"),
    ({"email": "r@example.com", "name": "R\u202eevil", "password": GOOD_PASSWORD,
      "password_confirm": GOOD_PASSWORD}, b"text-direction"),
    ({"email": "r@example.com", "name": "x" * 10_000, "password": GOOD_PASSWORD,
      "password_confirm": GOOD_PASSWORD}, b"at most 150 characters"),
    ({"email": "r\x00@example.com", "name": "R", "password": GOOD_PASSWORD,
      "password_confirm": GOOD_PASSWORD}, b"Null characters are not allowed"),
])
def test_setup_refuses_bad_input_and_changes_nothing(client, data, message):
    response = client.post("/setup/", data)
    assert response.status_code == 200
    assert message in response.content
    assert not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_setups_exactly_one_wins(drop_default_tenant):
    barrier = threading.Barrier(2)
    results: list[str] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            setup_first_admin(actor=None, email=f"admin{i}@example.com", name=f"Admin {i}",
                              password=GOOD_PASSWORD)
            results.append("won")
        except Conflict as exc:
            results.append("refused" if exc.code == "already_done" else f"error: {exc!r}")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(f"error: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("won") == 1, results
    loser = next(r for r in results if r != "won")
    if connections["default"].vendor == "sqlite":
        # The test database is SQLite in memory with a shared cache, where a concurrent writer
        # gets "table is locked" at once instead of waiting (a file database waits, then sees
        # the winner). Either way the loser changed nothing.
        assert loser == "refused" or "locked" in loser, results
    else:
        assert loser == "refused", results
    assert User.objects.count() == 1
    assert SetupLock.objects.count() == 1


@pytest.mark.django_db
def test_the_database_refuses_a_second_setup_even_past_the_python_check(monkeypatch):
    SetupLock.objects.create(id=1)  # as if another request had just won
    with pytest.raises(Conflict) as refused:
        setup_first_admin(actor=None, email="late@example.com", name="Late", password=GOOD_PASSWORD)
    assert refused.value.code == "already_done"
    assert not User.objects.exists()


@pytest.mark.django_db
def test_setup_command(monkeypatch, drop_default_tenant):
    monkeypatch.setenv("ADMINPANEL_SETUP_PASSWORD", GOOD_PASSWORD)
    call_command("setup", "--email", "ops@example.com", "--name", "Ops", "--noinput")
    user = User.objects.get()
    assert user.is_superuser and user.check_password(GOOD_PASSWORD)
    assert Tenant.objects.filter(is_default=True, status=Tenant.Status.ACTIVE).exists()
    with pytest.raises(CommandError, match="Setup is done"):
        call_command("setup", "--email", "two@example.com", "--name", "Two", "--noinput")
    assert Client().get("/setup/").status_code == 404


@pytest.mark.django_db
def test_setup_command_needs_a_password_and_validates_it(monkeypatch):
    monkeypatch.delenv("ADMINPANEL_SETUP_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="ADMINPANEL_SETUP_PASSWORD"):
        call_command("setup", "--email", "ops@example.com", "--name", "Ops", "--noinput")
    monkeypatch.setenv("ADMINPANEL_SETUP_PASSWORD", "1234")
    with pytest.raises(CommandError, match="too short"):
        call_command("setup", "--email", "ops@example.com", "--name", "Ops", "--noinput")
    prompts = iter([GOOD_PASSWORD, GOOD_PASSWORD + "!"])
    monkeypatch.delenv("ADMINPANEL_SETUP_PASSWORD")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(prompts))
    with pytest.raises(CommandError, match="do not match"):
        call_command("setup", "--email", "ops@example.com", "--name", "Ops")
    assert not User.objects.exists()
