"""The `profanity` category (insults and swearing aimed at no group) and its policy.

The offensive-language classifier files its verdicts there, and no longer
skips the policies: this row decides what they lead to. Events stored
before keep the categories they were stored with.
"""

from django.conf import settings
from django.db import migrations, models

CATEGORY_CHOICES = [
    ("sexual", "sexual"),
    ("hate_and_discrimination", "hate_and_discrimination"),
    ("violence_and_threats", "violence_and_threats"),
    ("dangerous_and_criminal_content", "dangerous_and_criminal_content"),
    ("selfharm", "selfharm"),
    ("health", "health"),
    ("financial", "financial"),
    ("law", "law"),
    ("pii", "pii"),
    ("profanity", "profanity"),
]


def profanity_default() -> tuple[str, float]:
    """Flag at the classifier's threshold, or what the operator had set the classifier to.

    Before this category the classifier's own MODERATION_OFFENSIVE_ACTION and
    threshold decided; a deployment that set it to block keeps blocking.
    """
    action = "block" if getattr(settings, "MODERATION_OFFENSIVE_ACTION", "flag") == "block" else "flag"
    threshold = min(max(float(getattr(settings, "MODERATION_OFFENSIVE_THRESHOLD", 0.9)), 0.0), 1.0)
    return action, threshold


def seed_profanity_policy(apps, schema_editor):
    CategoryPolicy = apps.get_model("moderation", "CategoryPolicy")
    action, threshold = profanity_default()
    CategoryPolicy.objects.get_or_create(
        category="profanity", defaults={"action": action, "threshold": threshold}
    )


def remove_profanity_policy(apps, schema_editor):
    apps.get_model("moderation", "CategoryPolicy").objects.filter(category="profanity").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0002_reports_sanctions_audit_policies"),
    ]

    operations = [
        migrations.AlterField(
            model_name="categorypolicy",
            name="category",
            field=models.CharField(choices=CATEGORY_CHOICES, max_length=40, unique=True),
        ),
        migrations.AlterField(
            model_name="rule",
            name="category",
            field=models.CharField(choices=CATEGORY_CHOICES, max_length=40),
        ),
        migrations.RunPython(seed_profanity_policy, remove_profanity_policy),
    ]
