"""Existing staff keep what they could do: superusers become administrators, other staff moderators.

`is_staff` is left as it was (they keep /admin/); the access layer counts it
as moderator anyway, so this row is what the management page shows and what a
later demotion changes. Reversing removes only the rows this step made.
"""

from django.db import migrations


def staff_roles(apps, schema_editor):
    User = apps.get_model("auth", "User")
    Account = apps.get_model("accounts", "Account")
    for user in User.objects.filter(is_staff=True) | User.objects.filter(is_superuser=True):
        role = "administrator" if user.is_superuser else "moderator"
        Account.objects.get_or_create(user=user, defaults={"role": role, "created_via": "migration"})


def forget_staff_roles(apps, schema_editor):
    apps.get_model("accounts", "Account").objects.filter(created_via="migration").delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_roles_group_limits_invitations")]

    operations = [migrations.RunPython(staff_roles, forget_staff_roles)]
