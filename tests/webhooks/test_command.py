"""``manage.py webhooks add/list/replay/remove``."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.app_users import services as users
from audit.models import AuditEntry
from tests.accounts.app_user_data import make_user
from webhooks import delivery
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("webhooks", *args, stdout=out)
    return out.getvalue()


def test_add_prints_the_secret_alone_on_its_last_line_then_list_replay_remove(acme, tadmin, receiver, private_ok):
    out = run("add", "acme", "--url", receiver.url, "--events", "user.banned,user.deleted")
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and secret == secret.strip() and " " not in secret
    endpoint = Endpoint.objects.get()
    assert endpoint.secret == secret and endpoint.event_types == ["user.banned", "user.deleted"]
    assert AuditEntry.objects.filter(event="webhook.endpoint_create", actor__isnull=True).count() == 1
    assert secret not in str(list(AuditEntry.objects.values_list("changes", "additional_data")))

    since = timezone.now()
    ann = make_user(acme, "ann@example.test")
    users.app_user_ban(actor=tadmin, tenant=acme, user_id=ann.pk, until=timezone.now() + dt.timedelta(hours=1))
    users.app_user_unban(actor=tadmin, tenant=acme, user_id=ann.pk)  # not chosen: not delivered
    receiver.status = 503
    delivery.run_until_idle(endpoint.pk)
    assert "pending 0, failed 1" in run("list", "acme")

    receiver.status = 200
    assert run("replay", "acme", "--since", since.isoformat(), "--failed-only").startswith("1 failed deliveries")
    delivery.run_until_idle(endpoint.pk)
    assert Delivery.objects.get().state == "succeeded"
    ids = receiver.ids()
    assert len(set(ids)) == 1 and len(ids) == 1 + 8  # eight failed attempts, then the replay, one id
    assert run("replay", "acme", "--since", since.isoformat()).startswith("1 deliveries")
    delivery.run_until_idle(endpoint.pk)
    assert receiver.ids()[-1] == ids[0]

    assert "removed" in run("remove", "acme", str(endpoint.pk))
    assert not Endpoint.objects.exists()
    assert run("list", "acme").strip() == "No endpoints."


def test_refusals_private_target_unknown_type_unknown_tenant_other_tenants_endpoint(acme, globex, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    with pytest.raises(CommandError, match="Private, loopback"):
        run("add", "acme", "--url", "http://127.0.0.1:8080/hook")
    with pytest.raises(CommandError, match="Unknown event type: user.exploded"):
        run("add", "acme", "--url", "https://hooks.example.com/x", "--events", "user.exploded")
    with pytest.raises(CommandError, match="No tenant"):
        run("add", "nope", "--url", "https://hooks.example.com/x")
    with pytest.raises(CommandError, match="naive|zone"):
        run("replay", "acme", "--since", "2026-01-01T00:00:00")
    out = run("add", "acme", "--url", "https://hooks.example.com/x")
    endpoint = Endpoint.objects.get()
    assert out.splitlines()[-1] == endpoint.secret
    with pytest.raises(CommandError, match="No such webhook endpoint"):
        run("remove", "globex", str(endpoint.pk))
    assert Endpoint.objects.count() == 1


def test_instance_endpoints_get_tenant_events(make_tenant, receiver, private_ok):
    run("add", "--instance", "--url", receiver.url)
    endpoint = Endpoint.objects.get(tenant__isnull=True)
    make_tenant("initech")
    delivery.run_until_idle(endpoint.pk)
    assert [r.json["type"] for r in receiver.received] == ["tenant.created", "tenant.provisioned"]
    assert all(r.json["data"]["tenant"] == "initech" for r in receiver.received)


def test_production_wants_https_unless_private_targets_are_allowed(acme, settings):
    settings.PRODUCTION = True
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    with pytest.raises(CommandError, match="must start with https://"):
        run("add", "acme", "--url", "http://hooks.example.com/in")
    run("add", "acme", "--url", "https://hooks.example.com/in")
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    run("add", "acme", "--url", "http://127.0.0.1:9000/in")
    assert Endpoint.objects.count() == 2


def test_prune_deletes_old_events_but_keeps_those_still_pending(acme, tadmin, private_ok):
    from events.models import Event

    endpoint, _ = hooks_create(acme, tadmin)
    ann = make_user(acme, "ann@example.test")
    users.app_user_ban(actor=tadmin, tenant=acme, user_id=ann.pk, until=timezone.now() + dt.timedelta(hours=1))
    users.app_user_unban(actor=tadmin, tenant=acme, user_id=ann.pk)
    Delivery.objects.filter(event__type="user.banned").update(state="succeeded")
    later = (timezone.now() + dt.timedelta(seconds=1)).isoformat()
    out = run("prune", "--before", later)
    assert Event.objects.filter(type="user.unbanned").exists()  # its delivery is still pending
    assert not Event.objects.filter(type="user.banned").exists()
    assert out.startswith(f"{out.split()[0]} events written before") and int(out.split()[0]) >= 1
    assert AuditEntry.objects.filter(event="app_user.ban").exists()  # the trail keeps everything
    with pytest.raises(CommandError, match="time zone"):
        run("prune", "--before", "2026-01-01T00:00:00")


def hooks_create(tenant, actor):
    from webhooks import services as hooks

    return hooks.endpoint_create(actor=actor, tenant=tenant, url="http://127.0.0.1:9/in")
