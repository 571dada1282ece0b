"""``manage.py setup``: first-run setup without a browser (the first instance admin)."""

from __future__ import annotations

import getpass
import os
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.services.staff import setup_first_admin
from core.errors import ServiceError

PASSWORD_ENV = "ADMINPANEL_SETUP_PASSWORD"  # noqa: S105 - a name, not a secret


class Command(BaseCommand):
    help = (
        "Create the first instance admin and the default tenant. The password comes from the "
        f"{PASSWORD_ENV} environment variable, or from a prompt. Refused once any staff user exists."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive",
                            help=f"Never prompt; the password must be in {PASSWORD_ENV}.")

    def _password(self, interactive: bool) -> str:
        password = os.environ.get(PASSWORD_ENV, "")
        if password:
            return password
        if not interactive:
            raise CommandError(f"Set {PASSWORD_ENV} or run without --noinput to be prompted.")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The two passwords do not match.")
        return first

    def handle(self, *args: Any, email: str, name: str, interactive: bool, **options: Any) -> None:
        password = self._password(interactive)
        try:
            user = setup_first_admin(actor=None, email=email, name=name, password=password)
        except ServiceError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(self.style.SUCCESS(
            f"Instance admin {user.email} created. Sign in at /login/ and set up an "
            "authenticator app."
        ))
