"""Delivery to a real receiver on 127.0.0.1: Standard Webhooks signatures verified with the
``standardwebhooks`` library, retries, order per user, rotation, refusals, disabling."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import WebhookVerificationError

from accounts.app_users import services as users
from events.models import Event
from outbox.models import OutboxMessage
from tests.accounts.app_user_data import make_user
from webhooks import delivery, sender
from webhooks import services as hooks
from webhooks.models import Attempt, Delivery, Endpoint

from .conftest import Receiver, free_port

pytestmark = pytest.mark.django_db


def _ban(actor, tenant, user):
    return users.app_user_ban(actor=actor, tenant=tenant, user_id=user.pk,
                              until=timezone.now() + dt.timedelta(hours=1), reason="spam")


def test_every_delivery_verifies_with_the_library_and_a_wrong_secret_fails(acme, tadmin, receiver, private_ok):
    endpoint, secret = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    assert secret.startswith("whsec_")
    user = make_user(acme, "ann@example.test")
    _ban(tadmin, acme, user)
    users.app_user_unban(actor=tadmin, tenant=acme, user_id=user.pk)
    delivery.run_until_idle(endpoint.pk)

    assert [r.json["type"] for r in receiver.received] == ["user.banned", "user.unbanned"]
    for got in receiver.received:
        payload = got.verify(secret)
        assert payload["data"]["user"] == {"id": str(user.pk), "email": "ann@example.test"}
        assert got.id == Event.objects.get(type=payload["type"]).uid
        with pytest.raises(WebhookVerificationError):
            got.verify(hooks.new_secret())
    assert set(Delivery.objects.values_list("state", flat=True)) == {"succeeded"}
    first = Attempt.objects.order_by("id").first()
    assert first.status_code == 200 and first.succeeded
    assert first.response_head == "status 200 from the test receiver"


def test_receiver_down_then_up_every_event_arrives_and_is_counted_once(acme, tadmin, private_ok):
    port = free_port()
    endpoint, secret = hooks.endpoint_create(actor=tadmin, tenant=acme, url=f"http://127.0.0.1:{port}/hook")
    people = [make_user(acme, f"u{i}@example.test") for i in range(6)]
    for person in people:
        _ban(tadmin, acme, person)
    outcome = delivery.run(endpoint.pk, budget=60)  # nobody listens: a few tries, then a pause
    assert outcome["state"] == "paused" and outcome["sent"] == 0
    assert Attempt.objects.filter(succeeded=False).count() == delivery.BREAK_AFTER

    receiver = Receiver(port=port).start()
    try:
        delivery.run_until_idle(endpoint.pk)
    finally:
        receiver.stop()
    expected = set(Event.objects.filter(type="user.banned").values_list("uid", flat=True))
    assert len(expected) == 6
    assert set(receiver.ids()) == expected and len(receiver.ids()) == 6  # each once
    for got in receiver.received:
        got.verify(secret)
    # The log's accounting: one delivery per event, each with exactly one successful attempt.
    assert Delivery.objects.filter(endpoint=endpoint).count() == 6
    assert set(Delivery.objects.values_list("state", flat=True)) == {"succeeded"}
    assert Attempt.objects.filter(succeeded=True).count() == 6
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.paused_until is None


def test_a_users_events_arrive_in_order_a_failed_one_holds_back_the_later_ones(acme, tadmin, receiver,
                                                                                 private_ok, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = [3600.0] * 7  # a failure waits (an hour) for its retry
    endpoint, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    ann, bob = make_user(acme, "ann@example.test"), make_user(acme, "bob@example.test")
    receiver.status = 500
    _ban(tadmin, acme, ann)
    delivery.run(endpoint.pk)
    assert Delivery.objects.get().state == "pending"  # waiting for its retry
    receiver.status = 200
    users.app_user_unban(actor=tadmin, tenant=acme, user_id=ann.pk)
    _ban(tadmin, acme, bob)
    Endpoint.objects.filter(pk=endpoint.pk).update(paused_until=None)
    delivery.run(endpoint.pk)
    # Bob's event went out; Ann's unban waits behind her failed ban.
    assert [r.json["data"]["user"]["email"] for r in receiver.received[1:]] == ["bob@example.test"]
    Delivery.objects.filter(state="pending").update(next_attempt_at=timezone.now())
    delivery.run_until_idle(endpoint.pk)
    ann_types = [r.json["type"] for r in receiver.received if r.json["data"]["user"]["email"] == "ann@example.test"]
    assert ann_types == ["user.banned", "user.banned", "user.unbanned"]


def test_rotation_both_secrets_verify_during_the_overlap_the_old_one_not_after(acme, tadmin, receiver, private_ok):
    endpoint, old = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    new = hooks.endpoint_rotate_secret(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    assert new != old and new.startswith("whsec_")
    endpoint.refresh_from_db()
    assert endpoint.previous_secret_expires_at - timezone.now() > dt.timedelta(hours=23, minutes=59)
    hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    delivery.run_until_idle(endpoint.pk)
    during = receiver.received[-1]
    assert during.json["type"] == "webhook.test"
    during.verify(old)
    during.verify(new)

    Endpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - dt.timedelta(seconds=1))
    hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    delivery.run_until_idle(endpoint.pk)
    after = receiver.received[-1]
    after.verify(new)
    with pytest.raises(WebhookVerificationError):
        after.verify(old)
    assert "whsec_" not in str(list(Event.objects.values_list("payload", flat=True)))


def test_a_private_target_is_refused_when_private_targets_are_not_allowed(acme, tadmin, receiver, settings):
    from core.errors import Invalid

    settings.WEBHOOKS_ALLOW_PRIVATE = False
    for url in (receiver.url, "http://localhost:9/x", "http://[::1]/x", "http://169.254.169.254/latest",
                "http://10.0.0.7/x"):
        with pytest.raises(Invalid) as refused:
            hooks.endpoint_create(actor=tadmin, tenant=acme, url=url)
        assert refused.value.code == "private_target"
    assert not Endpoint.objects.exists()
    # At send time too, after DNS resolution: an endpoint made while allowed is refused later.
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    endpoint, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    delivery.run(endpoint.pk)
    assert receiver.received == []
    attempt = Attempt.objects.get()
    assert not attempt.succeeded and attempt.error.startswith("refused: 127.0.0.1 resolves to a private")
    with pytest.raises(sender.SendError, match="refused"):
        sender.resolve("localhost", 80)


def test_an_answer_read_to_its_end_without_a_length_works_too(acme, tadmin, receiver, private_ok):
    receiver.content_length = False
    endpoint, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    delivery.run(endpoint.pk)
    attempt = Attempt.objects.get()
    assert attempt.succeeded and attempt.response_head == "status 200 from the test receiver"


def test_a_run_keeps_its_connection_alive_and_survives_the_receiver_closing_it(acme, tadmin, private_ok):
    receiver = Receiver(port=free_port(), keep_alive=True, drop_after=2).start()
    try:
        endpoint, secret = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
        for _ in range(5):
            hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
        pool = sender.Pool()
        for row in Delivery.objects.select_related("event").order_by("id")[:2]:
            assert delivery.attempt(endpoint, row, pool=pool)
        assert len(receiver.peers) == 1  # the second request went on the first one's connection
        # ... which the receiver has closed since: the third finds it dead and opens a new one.
        third = Delivery.objects.select_related("event").order_by("id")[2]
        assert delivery.attempt(endpoint, third, pool=pool)  # a fresh connection, no failed attempt
        pool.close()
        delivery.run_until_idle(endpoint.pk)
        assert Delivery.objects.filter(state="succeeded").count() == 5
        assert not Attempt.objects.filter(succeeded=False).exists()
        assert len(receiver.peers) == 3  # the first, the fresh one, and the run's
    finally:
        receiver.stop()


def test_redirects_are_not_followed(acme, tadmin, receiver, private_ok):
    receiver.status = 302
    endpoint, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    delivery.run(endpoint.pk)
    assert len(receiver.received) == 1
    attempt = Attempt.objects.get()
    assert attempt.status_code == 302 and not attempt.succeeded and attempt.error == "HTTP 302"


def test_a_slow_receiver_times_out(acme, tadmin, receiver, private_ok, settings):
    settings.WEBHOOKS_TIMEOUT_SECONDS = 0.3
    receiver.delay = 1.0
    endpoint, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    delivery.run(endpoint.pk)
    attempt = Attempt.objects.get()
    assert not attempt.succeeded and "timeout" in attempt.error and attempt.duration_ms < 900


def test_retries_end_in_failed_and_a_run_of_failures_disables_the_endpoint_and_mails_its_admins(
        acme, tadmin, staff_factory, private_ok, settings):
    settings.WEBHOOKS_DISABLE_AFTER_HOURS = 0
    settings.OUTBOX_DELIVERY = "inline"
    staff_factory("viewer@console.test", tenants={acme: "viewer"})
    endpoint, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=f"http://127.0.0.1:{free_port()}/")
    hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    delivery.run(endpoint.pk)  # first failure starts the run of failures
    Endpoint.objects.filter(pk=endpoint.pk).update(paused_until=None)
    delivery.run(endpoint.pk)  # still failing, past the policy: disabled
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason
    told = OutboxMessage.objects.filter(kind="webhook_disabled")
    assert list(told.values_list("to", flat=True)) == ["hooks-admin@console.test"]  # admins only
    assert endpoint.url in told.get().body
    from audit.models import AuditEntry

    assert AuditEntry.objects.filter(event="webhook.endpoint_disabled").count() == 1
    # Re-enabled by an admin: the remaining attempts go on, then the delivery has failed for good.
    settings.WEBHOOKS_DISABLE_AFTER_HOURS = 1000
    hooks.endpoint_update(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk, url=endpoint.url,
                          event_types=[], description="", enabled=True)
    for _ in range(10):
        Endpoint.objects.filter(pk=endpoint.pk).update(paused_until=None)
        delivery.run(endpoint.pk)
    row = Delivery.objects.get()
    assert row.state == "failed" and row.attempts == 1 + len(settings.WEBHOOKS_RETRY_SCHEDULE)


def test_replay_one_and_every_failed_since_resends_under_the_original_ids(acme, tadmin, receiver, private_ok):
    endpoint, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    ann = make_user(acme, "ann@example.test")
    receiver.status = 500
    since = timezone.now()
    _ban(tadmin, acme, ann)
    delivery.run_until_idle(endpoint.pk)
    failed = Delivery.objects.get()
    assert failed.state == "failed"
    receiver.status = 200
    assert hooks.deliveries_replay(actor=tadmin, tenant=acme, since=since, failed_only=True) == 1
    delivery.run_until_idle(endpoint.pk)
    failed.refresh_from_db()
    assert failed.state == "succeeded"
    assert len(set(receiver.ids())) == 1  # the same webhook-id every time
    hooks.delivery_replay(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk, delivery_id=failed.pk)
    delivery.run_until_idle(endpoint.pk)
    assert receiver.received[-1].id == receiver.received[0].id


def test_a_payload_is_bounded(acme, tadmin):
    from events.services import MAX_PAYLOAD_BYTES

    user = make_user(acme, "big@example.test")
    users.app_user_update(actor=tadmin, tenant=acme, user_id=user.pk,
                          user_metadata={f"k{i}": "x" * 400 for i in range(39)})
    users.app_user_update(actor=tadmin, tenant=acme, user_id=user.pk,
                          app_metadata={f"k{i}": "y" * 400 for i in range(39)},
                          user_metadata={f"j{i}": "z" * 400 for i in range(39)})
    import json

    for event in Event.objects.filter(type="user.updated"):
        assert len(json.dumps(event.payload)) <= MAX_PAYLOAD_BYTES


def test_secrets_are_encrypted_at_rest(acme, tadmin):
    from django.db import connection

    endpoint, secret = hooks.endpoint_create(actor=tadmin, tenant=acme, url="https://hooks.example.com/in")
    hooks.endpoint_rotate_secret(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret, previous_secret FROM webhooks_endpoint")
        stored = cursor.fetchone()
    assert all(v.startswith("enc1:") for v in stored) and secret not in "".join(stored)
    assert Endpoint.objects.get().previous_secret == secret


def test_a_batch_fans_out_in_bulk_and_every_event_arrives_once(acme, tadmin, receiver, private_ok):
    from accounts.app_users.batches import Selection, app_users_batch
    from tests.accounts.app_user_data import make_users

    endpoint, secret = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    people = make_users(acme, 300)  # past COPY's threshold: events and deliveries COPied on PostgreSQL
    app_users_batch(actor=tadmin, tenant=acme, action="ban", selection=Selection(ids=tuple(str(u.pk) for u in people)),
                    until=timezone.now() + dt.timedelta(days=1), reason="bulk")
    assert Delivery.objects.filter(endpoint=endpoint).count() == 302  # + batch.started, batch.finished
    delivery.run_until_idle(endpoint.pk)
    assert len(receiver.ids()) == len(set(receiver.ids())) == 302
    types = [r.json["type"] for r in receiver.received]
    assert types[0] == "batch.started" and types[-1] == "batch.finished" and types.count("user.banned") == 300
    receiver.received[150].verify(secret)


def test_the_reaper_wakes_an_endpoint_whose_run_was_lost(acme, tadmin, receiver, private_ok):
    from django_tasks_db.models import DBTaskResult

    from jobs import worker

    endpoint, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    DBTaskResult.objects.filter(task_path__startswith="webhooks.").delete()  # the queued run is lost
    long_ago = timezone.now() - dt.timedelta(minutes=5)
    Endpoint.objects.filter(pk=endpoint.pk).update(wake_at=long_ago)
    Delivery.objects.update(next_attempt_at=long_ago)
    assert worker.reap()["webhooks_woken"] == 1
    task = DBTaskResult.objects.get(task_path="webhooks.tasks.deliver_endpoint")
    assert task.status == "READY" and task.args_kwargs["args"] == [str(endpoint.pk)]
    assert worker.reap()["webhooks_woken"] == 0  # queued now: once
