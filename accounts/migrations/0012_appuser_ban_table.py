"""Active bans in a table of their own, kept by the database (issue 16: the ban's index work).

``appuser_banned`` indexed ``banned_until``, so every ban wrote a new entry in each of the user
table's 13 indexes: no update that changes an indexed column can be HOT (heap-only). The index
moves to ``accounts_appuserban`` (one row per user whose ``banned_until`` is set), which triggers
keep in step with the user row on both databases; a ban is then a HOT update of the user (when
its page has room: ``fillfactor`` 80 on PostgreSQL) plus one entry in a two-index table.
"""

from django.db import migrations, models

import accounts.migration_ops
from accounts import ban_table


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0011_appuser_email_sort_on_unique_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="AppUserBan",
            fields=[
                ("user", models.OneToOneField(db_constraint=False, on_delete=models.DO_NOTHING, primary_key=True,
                                              related_name="ban_row", serialize=False, to="accounts.appuser")),
                ("banned_until", models.DateTimeField()),
            ],
            options={
                "indexes": [models.Index(fields=["banned_until"], name="appuserban_until")],
            },
        ),
        migrations.RemoveIndex(
            model_name="appuser",
            name="appuser_banned",
        ),
        accounts.migration_ops.TenantVendorSQL(
            ban_table.POSTGRES_INSTALL, reverse_sql=ban_table.POSTGRES_REMOVE, vendor="postgresql",
        ),
        accounts.migration_ops.TenantVendorSQL(
            ban_table.SQLITE_INSTALL, reverse_sql=ban_table.SQLITE_REMOVE, vendor="sqlite",
        ),
    ]
