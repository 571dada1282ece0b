"""``manage.py webhooks <add|list|replay|remove|prune>``: a tenant's webhook endpoints, for operators.

``add`` prints the new endpoint's secret (``whsec_...``) alone on its last line, so a script can
take it with ``tail -n 1``. ``--instance`` instead of a slug: the instance endpoints (tenant
events of every tenant). Private and loopback targets need ``WEBHOOKS_ALLOW_PRIVATE=1``.
"""

from __future__ import annotations

import datetime as dt
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ServiceError
from tenants.models import Tenant
from webhooks import selectors, services


class Command(BaseCommand):
    help = "Manage webhook endpoints: add, list, replay, remove."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="Add an endpoint; prints its secret on the last line.")
        add.add_argument("slug", nargs="?")
        add.add_argument("--instance", action="store_true", help="An instance endpoint (tenant events).")
        add.add_argument("--url", required=True)
        add.add_argument("--events", default="", help="Comma-separated event types (default: all).")
        add.add_argument("--description", default="")
        lst = sub.add_parser("list", help="List the endpoints with their delivery counts.")
        lst.add_argument("slug", nargs="?")
        lst.add_argument("--instance", action="store_true")
        replay = sub.add_parser("replay", help="Send the events since a time again, under their ids.")
        replay.add_argument("slug", nargs="?")
        replay.add_argument("--instance", action="store_true")
        replay.add_argument("--since", required=True, help="ISO time, e.g. 2026-12-01T10:00:00Z.")
        replay.add_argument("--failed-only", action="store_true", help="Only those whose last attempt failed.")
        prune = sub.add_parser("prune", help="Delete events (and their delivery logs) written before a time.")
        prune.add_argument("--before", required=True, help="ISO time, e.g. 2026-11-01T00:00:00Z.")
        remove = sub.add_parser("remove", help="Remove an endpoint and its delivery log.")
        remove.add_argument("slug", nargs="?")
        remove.add_argument("id")
        remove.add_argument("--instance", action="store_true")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        tenant = None if action == "prune" else self._tenant(options.get("slug"), options.get("instance", False))
        try:
            getattr(self, f"do_{action}")(tenant=tenant, **options)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc

    def _tenant(self, slug: str | None, instance: bool) -> Tenant | None:
        if instance:
            if slug:
                raise CommandError("Give a tenant's slug or --instance, not both.")
            return None
        if not slug:
            raise CommandError("Give the tenant's slug (or --instance).")
        tenant = Tenant.objects.filter(slug=slug).exclude(status=Tenant.Status.PURGED).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug {slug!r}.")
        return tenant

    def do_add(self, *, tenant: Tenant | None, url: str, events: str, description: str, **_: Any) -> None:
        endpoint, secret = services.endpoint_create(
            actor=None, tenant=tenant, url=url, event_types=[e for e in events.split(",") if e.strip()],
            description=description,
        )
        self.stdout.write(f"Endpoint {endpoint.pk} -> {endpoint.url}")
        self.stdout.write(f"Events: {', '.join(endpoint.event_types) or 'all'}")
        self.stdout.write(secret)

    def do_list(self, *, tenant: Tenant | None, **_: Any) -> None:
        endpoints = selectors.endpoint_list(tenant=tenant)
        if not endpoints:
            self.stdout.write("No endpoints.")
        for e in endpoints:
            state = "enabled" if e.enabled else f"disabled ({e.disabled_reason or 'by an admin'})"
            self.stdout.write(
                f"{e.pk}  {e.url}  {state}  events: {','.join(e.event_types) or 'all'}  "
                f"delivered {e.delivered}, pending {e.pending}, failed {e.failed}"  # type: ignore[attr-defined]
            )

    @staticmethod
    def _when(value: str, option: str) -> dt.datetime:
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise CommandError(f"{option} is not an ISO time: {value!r}") from exc
        if when.tzinfo is None:
            raise CommandError(f"{option} needs a time zone (e.g. 2026-12-01T10:00:00Z).")
        return when

    def do_prune(self, *, before: str, **_: Any) -> None:
        when = self._when(before, "--before")
        count = services.events_prune(actor=None, before=when)
        self.stdout.write(f"{count} events written before {when.isoformat()} deleted (pending deliveries kept).")

    def do_replay(self, *, tenant: Tenant | None, since: str, failed_only: bool, **_: Any) -> None:
        when = self._when(since, "--since")
        count = services.deliveries_replay(actor=None, tenant=tenant, since=when, failed_only=failed_only)
        what = "failed deliveries" if failed_only else "deliveries"
        self.stdout.write(f"{count} {what} since {when.isoformat()} queued again.")

    def do_remove(self, *, tenant: Tenant | None, id: str, **_: Any) -> None:  # noqa: A002
        import uuid

        try:
            endpoint_id = uuid.UUID(id)
        except ValueError as exc:
            raise CommandError(f"No endpoint {id!r}.") from exc
        services.endpoint_delete(actor=None, tenant=tenant, endpoint_id=endpoint_id)
        self.stdout.write(f"Endpoint {endpoint_id} removed.")
