import accounts.migration_ops
import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.db import migrations


class Migration(migrations.Migration):
    """Substring search on PostgreSQL: pg_trgm and GIN indexes on UPPER(email), UPPER(name)."""

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        # pg_trgm backs the substring search of the users list (tenant databases, PostgreSQL).
        accounts.migration_ops.TenantVendorSQL(
            'CREATE EXTENSION IF NOT EXISTS pg_trgm',
            reverse_sql=migrations.RunSQL.noop,
            vendor='postgresql',
        ),
        accounts.migration_ops.PostgresOnlyAddIndex(
            model_name='appuser',
            index=django.contrib.postgres.indexes.GinIndex(django.contrib.postgres.indexes.OpClass(django.db.models.functions.text.Upper('email'), name='gin_trgm_ops'), name='appuser_email_trgm'),
        ),
        accounts.migration_ops.PostgresOnlyAddIndex(
            model_name='appuser',
            index=django.contrib.postgres.indexes.GinIndex(django.contrib.postgres.indexes.OpClass(django.db.models.functions.text.Upper('name'), name='gin_trgm_ops'), name='appuser_name_trgm'),
        ),
    ]
