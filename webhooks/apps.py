from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from events import services as events
        from webhooks import fanout

        events.subscribe(fanout.on_events)
