"""What the moderation hooks caught, and the rules staff give them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from inference.moderation.base import CATEGORIES, Action, Stage


class Rule(models.Model):
    """A word, phrase or regular expression that the rules hook looks for, with what to do."""

    class Kind(models.TextChoices):
        WORD = "word"
        PHRASE = "phrase"
        REGEX = "regex"

    category = models.CharField(max_length=40, choices=[(c, c) for c in CATEGORIES])
    action = models.CharField(
        max_length=10, choices=[(a.value, a.value) for a in Action if a != Action.ALLOW]
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    pattern = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "pattern"], name="moderation_rule_unique_pattern")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pattern!r} → {self.action} ({self.category})"


class ModerationEvent(models.Model):
    """One verdict other than `allow` on a reply: at its input, while it streamed, or at its end."""

    message = models.ForeignKey("chat.Message", on_delete=models.CASCADE, related_name="moderation_events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    hook = models.CharField(max_length=200)
    stage = models.CharField(max_length=10, choices=[(s.value, s.value) for s in Stage])
    action = models.CharField(max_length=10, choices=[(a.value, a.value) for a in Action])
    categories = models.JSONField(default=list)
    score = models.FloatField(default=0.0)
    reason = models.TextField(blank=True)
    error = models.TextField(blank=True)  # the hook failed ("timeout" or its exception)
    latency_ms = models.FloatField(default=0.0)
    # What the hook saw, unredacted: for staff only, never shown to users nor fed to the model.
    excerpt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["action", "-created_at"]),
            models.Index(fields=["stage", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.hook} at {self.stage}"
