"""``manage.py audit verify [--tenant SLUG | --instance] [--archive FILE]`` and
``manage.py audit prune --before DATE [--tenant SLUG | --instance] --output FILE [--format jsonl|csv]``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit import archive, chain
from audit.models import AuditEntry


def _tenant_model() -> Any:
    # The audit layer sits below tenants: the model is reached through the entry's foreign key.
    return AuditEntry._meta.get_field("tenant").related_model


class Command(BaseCommand):
    help = "Verify the hash chains of the audit trail, or archive and prune their oldest entries."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="Walk the chains; name the first broken link (exit 1).")
        prune = sub.add_parser("prune", help="Archive the entries before a date, then delete them.")
        for p in (verify, prune):
            group = p.add_mutually_exclusive_group()
            group.add_argument("--tenant", help="Only this tenant's chain (its slug).")
            group.add_argument("--instance", action="store_true", help="Only the instance chain.")
        verify.add_argument("--archive", type=Path, help="Verify a JSONL archive made by prune instead.")
        prune.add_argument("--before", required=True, help="YYYY-MM-DD: entries written before this day go.")
        prune.add_argument("--output", type=Path, required=True, help="The archive file (must not exist).")
        prune.add_argument("--format", choices=archive.FORMATS, default="jsonl")

    def _keys(self, options: dict[str, Any]) -> list[str]:
        if options.get("instance"):
            return [chain.INSTANCE]
        slug = options.get("tenant")
        if slug:
            tenant = _tenant_model().objects.filter(slug=slug).first()
            if tenant is None:
                raise CommandError(f"No tenant {slug!r}.")
            return [chain.chain_key(tenant.pk)]
        return chain.all_keys()

    def _names(self) -> dict[str, str]:
        names = {chain.INSTANCE: "instance"}
        names.update({str(pk): slug for pk, slug in _tenant_model().objects.values_list("pk", "slug")})
        return names

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "verify":
            self.verify(options)
        else:
            self.prune(options)

    def verify(self, options: dict[str, Any]) -> None:
        if options.get("archive"):
            try:
                heads = archive.verify_archive(options["archive"])
            except (archive.ArchiveError, OSError, ValueError, KeyError) as exc:
                raise CommandError(f"The archive does not verify: {exc}") from exc
            for key, head in heads.items():
                self.stdout.write(f"{key}: archive verified, chain head {head}")
            return
        names = self._names()
        broken = []
        for key in self._keys(options):
            result = chain.verify(key)
            chain.remember(result)
            label = names.get(key, key)
            if result.ok:
                upto = f" up to entry {result.last_id}" if result.last_id else ""
                self.stdout.write(f"{label}: {result.checked} entries verified{upto}.")
            else:
                assert result.broken is not None
                broken.append(label)
                self.stdout.write(f"{label}: {result.broken.describe()}.")
        if broken:
            raise CommandError(f"Broken audit chain(s): {', '.join(broken)}.", returncode=1)

    def prune(self, options: dict[str, Any]) -> None:
        try:
            day = dt.date.fromisoformat(options["before"])
        except ValueError as exc:
            raise CommandError("--before takes a date as YYYY-MM-DD.") from exc
        before = dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())
        names = self._names()
        try:
            done = archive.prune(keys=self._keys(options), before=before, output=options["output"],
                                 fmt=options["format"])
        except FileExistsError as exc:
            raise CommandError(f"{options['output']} exists already: choose a new file.") from exc
        except archive.ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        for item in done:
            self.stdout.write(
                f"{names.get(item.key, item.key)}: {item.count} entries archived and pruned "
                f"(ids {item.first_id}-{item.last_id}); the chain now starts from {item.anchor_hash}."
            )
        if not done:
            self.stdout.write("Nothing to prune.")
