"""``manage.py demo_data <slug> --users 5000``: realistic sample users in a tenant (idempotent)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.app_users.demo import demo_data_load
from core.errors import ServiceError
from tenants.models import Tenant
from tenants.services import tenant_create

MAX_USERS = 200_000


class Command(BaseCommand):
    help = ("Fill a tenant with realistic sample users (names, statuses, factors, sign-ins, sessions). "
            "Creates the tenant when it does not exist. Running it again creates nothing new.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--users", type=int, default=500, help="how many demo users (default 500)")
        parser.add_argument("--name", default="", help="the tenant's name, when it is created")

    def handle(self, *args: Any, slug: str, users: int, name: str, **options: Any) -> None:
        if not 1 <= users <= MAX_USERS:
            raise CommandError(f"--users must be between 1 and {MAX_USERS:,}.")
        tenant = Tenant.objects.filter(slug=slug).first()
        try:
            if tenant is None or tenant.status in (Tenant.Status.PROVISIONING, Tenant.Status.FAILED):
                tenant = tenant_create(actor=None, slug=slug, name=name or slug.replace("-", " ").title())
                self.stdout.write(f"Tenant {slug} ready.")
            if tenant.status != Tenant.Status.ACTIVE:
                raise CommandError(f"Tenant {slug} is {tenant.status}; demo data goes only into an active tenant.")
            result = demo_data_load(actor=None, tenant=tenant, users=users)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(
            f"{result.created} demo users created ({result.sessions} sessions, {result.factors} factors), "
            f"{result.existing} already there. Open /t/{slug}/users/."
        ))
