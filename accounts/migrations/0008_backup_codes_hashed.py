"""Staff backup codes: the plain codes django-otp's StaticToken held become their HMAC
(accounts.otp.hash_backup_code); the codes people hold keep working."""

import re

from django.conf import settings
from django.db import migrations
from django.utils.crypto import salted_hmac

SALT = "accounts.otp.backup-code"  # accounts.otp.BACKUP_HASH_SALT, frozen here
PLAIN = re.compile(r"^[a-z2-7]{8}$")  # a code as generated: 8 base32 characters


def hash_existing(apps, schema_editor):
    token = apps.get_model("otp_static", "StaticToken")
    db = schema_editor.connection.alias
    for pk, value in token.objects.using(db).values_list("pk", "token").iterator(chunk_size=500):
        code = re.sub(r"[\s-]", "", value or "").lower()
        if PLAIN.match(code):
            hashed = salted_hmac(SALT, code, secret=settings.SECRET_KEY, algorithm="sha256").hexdigest()[:16]
            token.objects.using(db).filter(pk=pk).update(token=hashed)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_staff_time_zone"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(hash_existing, migrations.RunPython.noop)]
