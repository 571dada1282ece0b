"""Chain the entries written before the hash chain existed: per chain, in id order, from the
genesis hash, with the rules of ``audit.chain`` (the same function the writers use)."""

from django.db import migrations

from audit import chain

BATCH = 2000


def chain_existing(apps, schema_editor):
    entry_model = apps.get_model("audit", "AuditEntry")
    head_model = apps.get_model("audit", "ChainHead")
    alias = schema_editor.connection.alias
    entries = entry_model.objects.using(alias)
    tenants = list(entries.values_list("tenant_id", flat=True).distinct())
    columns = ("id", *chain.CONTENT_COLUMNS)
    for tenant_id in tenants:
        key = chain.chain_key(tenant_id)
        prev, last_id = chain.GENESIS, 0
        while True:
            rows = list(
                entries.filter(tenant_id=tenant_id, id__gt=last_id).order_by("id").values(*columns)[:BATCH]
            )
            if not rows:
                break
            updates = []
            for row in rows:
                digest = chain.entry_hash(prev, row)
                updates.append(entry_model(id=row["id"], prev_hash=prev, hash=digest))
                prev, last_id = digest, row["id"]
            entries.bulk_update(updates, ["prev_hash", "hash"], batch_size=500)
        head_model.objects.using(alias).update_or_create(
            key=key, defaults={"head_id": last_id or None, "head_hash": prev}
        )


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_chain"),
    ]

    operations = [
        migrations.RunPython(chain_existing, migrations.RunPython.noop, elidable=False),
    ]
