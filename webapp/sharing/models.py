"""Share links: a read-only snapshot of a conversation's path at an unguessable URL (docs/sharing.md)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.chat.models import Conversation, Message


class ShareLink(models.Model):
    """One link. Only the SHA-256 of its token is kept: the URL is shown once, when it is made.

    It goes with its conversation (CASCADE): deleting the chat, or retention
    deleting it, ends the link and its snapshot.
    """

    class Audience(models.TextChoices):
        PUBLIC = "public", "Anyone with the link"
        SIGNED_IN = "signed_in", "Signed-in people only"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="share_links")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.PUBLIC)
    title = models.CharField(max_length=200, blank=True)  # the conversation's, at share time
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    taken_down_at = models.DateTimeField(null=True, blank=True)
    taken_down_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "created_at"], name="sharing_link_owner_recent")]

    def __str__(self) -> str:
        return f"share link {self.pk} of {self.conversation_id}"

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and self.taken_down_at is None


class SharedMessage(models.Model):
    """A message of the snapshot: its text copied at share time, so later edits change nothing.

    `message` points at the original, so that a reply hidden or blocked
    later is left out when the page is shown (selectors.shared_messages).
    """

    link = models.ForeignKey(ShareLink, on_delete=models.CASCADE, related_name="snapshot")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Message.Role.choices)
    content = models.TextField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["link", "position"], name="sharing_snapshot_position"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"
