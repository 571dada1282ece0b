"""``manage.py api_keys create <slug> --role R --name N`` / ``list <slug>`` / ``revoke <slug> <prefix>``.

``create`` prints the new key alone on its last line (shown once: only its hash is kept).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.access import ROLES
from core.errors import ServiceError
from credentials import services
from tenants.selectors import tenant_get


class Command(BaseCommand):
    help = "Create, list and revoke a tenant's API service keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="op", required=True)
        create = sub.add_parser("create", help="Create a key (printed once, on the last line).")
        create.add_argument("slug")
        create.add_argument("--role", required=True, choices=ROLES)
        create.add_argument("--name", required=True)
        listing = sub.add_parser("list", help="List the tenant's keys (never their secrets).")
        listing.add_argument("slug")
        revoke = sub.add_parser("revoke", help="Revoke a key by its prefix (acsk_...) or id.")
        revoke.add_argument("slug")
        revoke.add_argument("prefix")

    def handle(self, *args, **options) -> None:
        tenant = tenant_get(slug=options["slug"])
        if tenant is None:
            raise CommandError(f"No tenant {options['slug']!r}.")
        try:
            if options["op"] == "create":
                key, raw = services.api_key_create(actor=None, tenant=tenant, name=options["name"],
                                                   role=options["role"])
                self.stdout.write(f"Created {key.prefix} ({key.role}) for {tenant.slug}. "
                                  "Copy the key now: it is not shown again.")
                self.stdout.write(raw)
            elif options["op"] == "list":
                for key in services.api_key_list(tenant=tenant):
                    state = "revoked" if key.revoked_at else ("expired" if not key.is_live() else "live")
                    used = key.last_used_at.isoformat() if key.last_used_at else "never"
                    self.stdout.write(f"{key.prefix}\t{key.role}\t{state}\tlast used {used}\t{key.name}")
            else:
                key = services.api_key_revoke(actor=None, tenant=tenant, ref=options["prefix"])
                self.stdout.write(f"Revoked {key.prefix}.")
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
