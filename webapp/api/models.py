"""API keys, and which key asked for which conversation."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A person's key for `/v1/`: only its SHA-256 is stored; the key itself is shown once."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The key's first characters, shown in lists so a person can tell keys apart.
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ApiConversation(models.Model):
    """Marks a conversation an API request made: which key, and whether it is kept in the lists.

    Moderation events of API requests are found through it:
    `ModerationEvent.objects.filter(message__conversation__api_link__api_key=key)`.
    """

    conversation = models.OneToOneField(
        "chat.Conversation", on_delete=models.CASCADE, related_name="api_link"
    )
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, related_name="conversations")
    # False with API_STORE_CONVERSATIONS off: hidden from the lists and exports, deleted after the response.
    stored = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.conversation_id} by {self.api_key}"
