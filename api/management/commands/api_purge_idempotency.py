"""``manage.py api_purge_idempotency``: forget Idempotency-Key answers older than the policy's
``api_idempotency_hours`` (run daily)."""

from django.core.management.base import BaseCommand

from api.idempotency import purge


class Command(BaseCommand):
    help = "Delete stored Idempotency-Key answers past their lifetime."

    def handle(self, *args, **options) -> None:
        self.stdout.write(f"Deleted {purge()} idempotency record(s).")
