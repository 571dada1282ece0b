"""``manage.py tenants <create|list|migrate|suspend|resume|delete|restore|purge|capacity>``.

Every subcommand is idempotent: running it again after a crash finishes the job.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ServiceError
from tenants import db, selectors, services
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Manage tenants and their databases."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="Create a tenant (or finish an interrupted one).")
        create.add_argument("slug")
        create.add_argument("--name", required=True)
        create.add_argument("--metadata", default=None, help="A JSON object.")
        create.add_argument("--server", default=None, help="Key of a tenant database server.")
        lst = sub.add_parser("list", help="List tenants.")
        lst.add_argument("--json", action="store_true", help="Machine-readable output.")
        lst.add_argument("--all", action="store_true", help="Include purged tenants.")
        mig = sub.add_parser("migrate", help="Migrate one tenant's database, or all.")
        mig.add_argument("slug", nargs="?")
        mig.add_argument("--all", action="store_true")
        mig.add_argument("--recheck", action="store_true",
                         help="With --all: ask every database, even those recorded as current.")
        for name, text in [
            ("suspend", "Suspend a tenant (its app users are refused)."),
            ("resume", "Resume a suspended tenant."),
            ("delete", "Soft-delete a tenant: access off, data kept."),
            ("restore", "Restore a soft-deleted tenant."),
            ("retry", "Finish the creation of a failed tenant."),
        ]:
            sub.add_parser(name, help=text).add_argument("slug")
        cap = sub.add_parser("capacity", help="Planned connections per database server vs its max_connections.")
        cap.add_argument("--json", action="store_true", help="Machine-readable output.")
        purge = sub.add_parser("purge", help="Drop a deleted tenant's database (irreversible).")
        purge.add_argument("slug")
        purge.add_argument("--yes", action="store_true", help="Do not ask for the slug.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, f"do_{action}")(**options)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc

    def _tenant(self, slug: str) -> Tenant:
        tenant = selectors.tenant_get(slug=slug)
        if tenant is None:
            raise CommandError(f"No tenant with the slug {slug!r}.")
        return tenant

    def do_create(
        self, *, slug: str, name: str, metadata: str | None, server: str | None, **_: Any
    ) -> None:
        meta = None
        if metadata:
            try:
                meta = json.loads(metadata)
            except json.JSONDecodeError as exc:
                raise CommandError(f"--metadata is not valid JSON: {exc}") from exc
        tenant = services.tenant_create(
            actor=None, slug=slug, name=name, metadata=meta, db_server=server
        )
        self.stdout.write(
            self.style.SUCCESS(f"Tenant {tenant.slug!r} is {tenant.status}")
            + f" (database {tenant.db_name} on server {tenant.db_server!r})."
        )

    def do_list(self, *, json: bool = False, all: bool = False, **_: Any) -> None:  # noqa: A002
        import json as jsonlib

        latest = db.latest_schema_version()
        rows = []
        for t in selectors.tenant_list(include_purged=all):
            rows.append(
                {
                    "slug": t.slug,
                    "name": t.name,
                    "status": t.status,
                    "default": t.is_default,
                    "server": t.db_server,
                    "database": t.db_name,
                    "schema": "current" if t.schema_version == latest else "behind",
                    "created": t.created_at.isoformat(timespec="seconds"),
                }
            )
        if json:
            self.stdout.write(jsonlib.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("No tenants.")
            return
        headers = ["slug", "name", "status", "default", "server", "database", "schema", "created"]
        table = [headers] + [[str(r[h]) for h in headers] for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
        for row in table:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))

    def do_migrate(self, *, slug: str | None, all: bool, recheck: bool = False, **_: Any) -> None:  # noqa: A002
        if bool(slug) == bool(all):
            raise CommandError("Give one tenant slug, or --all.")
        if slug:
            tenant = self._tenant(slug)
            try:
                outcomes = [services.MigrateOutcome(
                    tenant, services.tenant_migrate(actor=None, tenant=tenant))]
            except ServiceError as exc:
                outcomes = [services.MigrateOutcome(tenant, error=exc.message)]
        else:
            outcomes = services.tenant_migrate_all(actor=None, recheck=recheck)
        failures = 0
        for outcome in outcomes:
            if outcome.result is None:
                failures += 1
                self.stderr.write(f"{outcome.tenant.slug}: FAILED: {outcome.error}")
                continue
            result = outcome.result
            changed = "migrated" if result["from"] != result["to"] else "already current"
            self.stdout.write(f"{outcome.tenant.slug}: {changed} ({_fmt(result['to'])})")
        if failures:
            raise CommandError(f"{failures} of {len(outcomes)} tenant(s) failed to migrate.")

    def do_capacity(self, *, json: bool = False, **_: Any) -> None:
        import json as jsonlib

        from tenants import capacity

        data = capacity.describe()
        if json:
            self.stdout.write(jsonlib.dumps(data, indent=2))
        else:
            t = data["threads"]
            self.stdout.write(
                f"Threads: {t['web']} web (APP_SERVERS x WEB_WORKERS x WEB_THREADS) + {t['jobs']} job "
                f"worker(s) + {t['mail']} mail worker(s) = {t['total']}; each holds 1 control and up to "
                f"{data['tenant_connections_per_thread']} tenant connection(s)."
                + (f" Pooler: {data['pooler']} mode." if data["pooler"] else ""))
            if not data["servers"]:
                self.stdout.write("SQLite: no database server to plan.")
            for s in data["servers"]:
                if s["error"]:
                    line = f"{s['server']}: planned {s['planned']}, server did not answer: {s['error']}"
                elif data["pooler"]:
                    line = (f"{s['server']}: planned {s['planned']} client connections (the pooler's "
                            f"max_client_conn must allow them); PostgreSQL max_connections {s['max_connections']}")
                else:
                    verdict = "fits" if s["fits"] else "DOES NOT FIT"
                    line = (f"{s['server']}: planned {s['planned']} of {s['available']} available "
                            f"(max_connections {s['max_connections']} - {s['reserved']} reserved): {verdict}")
                self.stdout.write(line)
        if any(s["fits"] is False for s in data["servers"]):
            raise CommandError("The planned connections exceed a server's max_connections.")

    def _simple(self, verb: str, slug: str) -> None:
        tenant = getattr(services, f"tenant_{verb}")(actor=None, tenant=self._tenant(slug))
        self.stdout.write(self.style.SUCCESS(f"Tenant {tenant.slug!r} is {tenant.status}."))

    def do_suspend(self, *, slug: str, **_: Any) -> None:
        self._simple("suspend", slug)

    def do_resume(self, *, slug: str, **_: Any) -> None:
        self._simple("resume", slug)

    def do_delete(self, *, slug: str, **_: Any) -> None:
        self._simple("delete", slug)

    def do_restore(self, *, slug: str, **_: Any) -> None:
        self._simple("restore", slug)

    def do_retry(self, *, slug: str, **_: Any) -> None:
        self._simple("retry", slug)

    def do_purge(self, *, slug: str, yes: bool, **_: Any) -> None:
        tenant = self._tenant(slug)
        confirm = slug
        if not yes:
            if not self._interactive():
                raise CommandError("Purging needs confirmation: run it in a terminal, or --yes.")
            confirm = input(
                f"This drops the database {tenant.db_name} for good. Type the slug to confirm: "
            ).strip()
        tenant = services.tenant_purge(actor=None, tenant=tenant, confirm_slug=confirm)
        self.stdout.write(self.style.SUCCESS(f"Tenant {tenant.slug!r} is {tenant.status}."))

    @staticmethod
    def _interactive() -> bool:
        import sys

        return sys.stdin.isatty()


def _fmt(version: dict[str, Any]) -> str:
    return ", ".join(f"{app} {name}" for app, name in sorted(version.items())) or "no schema"
