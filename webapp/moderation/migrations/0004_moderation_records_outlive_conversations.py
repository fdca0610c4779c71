"""Moderation events and reports outlive their conversation: the message link goes null, the text stays.

Reports gain `excerpt`, the reported reply's text, filled here for the
reports already stored.
"""

import django.db.models.deletion
from django.db import migrations, models

EXCERPT_CHARS = 4000


def fill_report_excerpts(apps, schema_editor):
    Report = apps.get_model("moderation", "Report")
    for report in (
        Report.objects.filter(excerpt="", message__isnull=False).select_related("message").iterator()
    ):
        report.excerpt = report.message.content[:EXCERPT_CHARS]
        report.save(update_fields=["excerpt"])


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0003_profanity"),
    ]

    operations = [
        migrations.AddField(
            model_name="report",
            name="excerpt",
            field=models.TextField(blank=True),
        ),
        migrations.AlterField(
            model_name="moderationevent",
            name="message",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="moderation_events",
                to="chat.message",
            ),
        ),
        migrations.AlterField(
            model_name="report",
            name="message",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="reports",
                to="chat.message",
            ),
        ),
        migrations.RunPython(fill_report_excerpts, migrations.RunPython.noop),
    ]
