"""What the moderation hooks caught, and the rules staff give them."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
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


class ReviewStatus(models.TextChoices):
    """Where an item of the moderators' queue stands."""

    OPEN = "open"
    DISMISSED = "dismissed"
    CONFIRMED = "confirmed"


class ModerationEvent(models.Model):
    """One verdict other than `allow` on a reply: at its input, while it streamed, or at its end."""

    # SET_NULL: the event outlives its conversation (deleted by its owner or by retention) and
    # keeps what was said in `excerpt`; while it is open, retention keeps the conversation.
    message = models.ForeignKey(
        "chat.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="moderation_events"
    )
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
    # The first of `categories`, as a column: the queue filters on it through an index.
    category = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The moderators' review of the event (the queue shows the open ones).
    status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.OPEN)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["action", "-created_at"]),
            models.Index(fields=["stage", "-created_at"]),
            # The queue at 100k events: newest first within a status, keyset-paged on (created_at, id).
            models.Index(fields=["status", "-created_at", "-id"], name="moderation_event_queue"),
            models.Index(fields=["category", "status", "-created_at"], name="moderation_event_category"),
            models.Index(fields=["hook", "status", "-created_at"], name="moderation_event_hook"),
            models.Index(fields=["stage", "status", "-created_at"], name="moderation_event_stage"),
            models.Index(fields=["user", "-created_at"], name="moderation_event_user"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.hook} at {self.stage}"


class Report(models.Model):
    """A user's report of an assistant reply; it lands in the moderators' queue."""

    class Reason(models.TextChoices):
        HARMFUL = "harmful", "Harmful or dangerous"
        HATEFUL = "hateful", "Hateful or harassing"
        SEXUAL = "sexual", "Sexual content"
        MISINFORMATION = "misinformation", "False or misleading"
        PRIVACY = "privacy", "Reveals private information"
        OTHER = "other", "Something else"

    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports")
    # SET_NULL, as for events: the report keeps the reply's text in `excerpt`.
    message = models.ForeignKey(
        "chat.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="reports"
    )
    # The reported reply as it stood when reported (staff only).
    excerpt = models.TextField(blank=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.TextField(blank=True, max_length=1000)
    status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reporter", "message"],
                condition=models.Q(status="open"),
                name="moderation_report_one_open",
            )
        ]
        indexes = [models.Index(fields=["status", "-created_at", "-id"], name="moderation_report_queue")]

    def __str__(self) -> str:
        return f"{self.reason} report by {self.reporter_id} ({self.status})"


class Sanction(models.Model):
    """A warning, a suspension until a time, or a ban; in force until it expires or is revoked."""

    class Kind(models.TextChoices):
        WARN = "warn"
        SUSPEND = "suspend"
        BAN = "ban"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sanctions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    until = models.DateTimeField(null=True, blank=True)  # suspensions only
    reason = models.TextField(blank=True, max_length=1000)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sanctions_given"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # A warning is shown once: set when the user's next page has shown it.
    seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(kind="suspend") | models.Q(until__isnull=False),
                name="moderation_sanction_suspend_until",
            )
        ]
        indexes = [models.Index(fields=["user", "revoked_at"], name="moderation_sanction_user")]

    def __str__(self) -> str:
        return f"{self.kind} of {self.user_id}" + (
            f" until {self.until:%Y-%m-%d %H:%M}" if self.until else ""
        )


class AppendOnlyError(Exception):
    """The audit log is never changed nor deleted from."""


class AuditLogQuerySet(models.QuerySet):
    def update(self, **kwargs: object) -> int:
        raise AppendOnlyError("audit log entries cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit log entries cannot be deleted")


class AuditLogEntry(models.Model):
    """What a moderator did, to what: written in the transaction of the action, never changed."""

    # PROTECT: a moderator with entries is deactivated, not deleted, so the log keeps its actor.
    moderator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=40)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=64)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log entries"
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="moderation_audit_recent"),
            models.Index(fields=["target_type", "target_id"], name="moderation_audit_target"),
            models.Index(fields=["moderator", "-created_at"], name="moderation_audit_moderator"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type} {self.target_id} by {self.moderator_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit log entries cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit log entries cannot be deleted")


class CategoryPolicy(models.Model):
    """What a hook's verdict in a category leads to, at or above a score (docs/moderation.md)."""

    category = models.CharField(max_length=40, unique=True, choices=[(c, c) for c in CATEGORIES])
    action = models.CharField(max_length=10, choices=[(a.value, a.value) for a in Action])
    threshold = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category"]
        verbose_name_plural = "category policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(threshold__gte=0.0, threshold__lte=1.0),
                name="moderation_policy_threshold_range",
            )
        ]

    def __str__(self) -> str:
        return f"{self.category}: {self.action} at {self.threshold:g}"


class HiddenReply(models.Model):
    """A reply a moderator hid: left out of its owner's page, exports and later turns; kept for staff."""

    message = models.OneToOneField("chat.Message", on_delete=models.CASCADE, related_name="moderation_hidden")
    hidden_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    hidden_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "hidden replies"

    def __str__(self) -> str:
        return f"reply {self.message_id} hidden by {self.hidden_by_id}"
