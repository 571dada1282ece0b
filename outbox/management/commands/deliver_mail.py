import time

from django.core.management.base import BaseCommand
from django.db import connections

from outbox.models import OutboxMessage
from outbox.services import deliver


class Command(BaseCommand):
    help = (
        "Send queued outbox messages (failed deliveries are retried up to 10 times). With --loop, "
        "keep running: the mail worker of a deployment with OUTBOX_DELIVERY=worker."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--limit", type=int, default=500)
        parser.add_argument("--loop", action="store_true", help="Keep polling the outbox.")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between polls.")
        parser.add_argument("--max-rounds", type=int, default=0, help="Stop after N polls (0: never).")

    def handle(self, *args, limit: int, loop: bool, interval: float, max_rounds: int, **options) -> None:
        rounds = 0
        while True:
            sent = deliver(limit=limit)
            rounds += 1
            if not loop or (max_rounds and rounds >= max_rounds):
                left = OutboxMessage.objects.filter(status=OutboxMessage.Status.QUEUED).count()
                self.stdout.write(f"Sent {sent} message(s); {left} still queued.")
                return
            if sent:
                self.stdout.write(f"Sent {sent} message(s).")
            connections.close_all()  # a long-lived worker holds no connection between polls
            time.sleep(interval)
