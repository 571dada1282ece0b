"""Every stored email in its canonical form (core.emails: NFKC, case fold, ``ı`` → ``i``, IDNA
domain), and uniqueness on that column itself instead of ``LOWER(email)``: ``LOWER``/``UPPER``
let ``ſ``/``s`` and ``ı``/``i`` spellings make twin accounts and dodge counters.

Two rows whose addresses have the same canonical form (twins made through that hole) cannot both
keep it: the migration stops and names them, and an operator decides which one goes (nothing is
renamed or deleted behind anyone's back)."""

from collections import defaultdict

from django.db import migrations, models

from core.emails import canonical_email


def _canonicalize(model, alias, label):
    rows = model.objects.using(alias)
    by_canonical = defaultdict(list)
    for pk, email in rows.values_list("pk", "email").iterator(chunk_size=2000):
        by_canonical[canonical_email(email)].append((pk, email))
    twins = {c: found for c, found in by_canonical.items() if len(found) > 1}
    if twins:
        listed = "; ".join(
            f"{c}: " + ", ".join(f"{pk} ({email!r})" for pk, email in found) for c, found in twins.items()
        )
        raise RuntimeError(
            f"{label} in database {alias!r}: these rows are one address spelled differently and "
            f"cannot all keep it ({listed}). Delete or re-address all but one of each, then migrate again."
        )
    for canonical, [(pk, email)] in by_canonical.items():
        if email != canonical:
            rows.filter(pk=pk).update(email=canonical)


def staff_canonical(apps, schema_editor):
    _canonicalize(apps.get_model("accounts", "User"), schema_editor.connection.alias, "Staff users")


def app_users_canonical(apps, schema_editor):
    _canonicalize(apps.get_model("accounts", "AppUser"), schema_editor.connection.alias, "App users")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_job_targets'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='appuser',
            name='appuser_email_ci_unique',
        ),
        migrations.RemoveConstraint(
            model_name='user',
            name='accounts_user_email_ci_unique',
        ),
        migrations.RunPython(staff_canonical, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(app_users_canonical, migrations.RunPython.noop, elidable=False,
                             hints={"tenant": True}),
        migrations.AddConstraint(
            model_name='appuser',
            constraint=models.UniqueConstraint(models.F('email'), name='appuser_email_unique'),
        ),
    ]
