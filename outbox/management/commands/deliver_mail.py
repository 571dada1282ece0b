from django.core.management.base import BaseCommand

from outbox.models import OutboxMessage
from outbox.services import deliver


class Command(BaseCommand):
    help = "Send queued outbox messages (failed deliveries are retried up to 10 times)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--limit", type=int, default=500)

    def handle(self, *args, limit: int, **options) -> None:
        sent = deliver(limit=limit)
        left = OutboxMessage.objects.filter(status=OutboxMessage.Status.QUEUED).count()
        self.stdout.write(f"Sent {sent} message(s); {left} still queued.")
