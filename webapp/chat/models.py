"""Conversations and their messages."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from inference.streaming import STAT_FIELDS as REPLY_STAT_FIELDS

# What `done.stats` carries: the worker's figures and the time spent queued.
STAT_FIELDS = (*REPLY_STAT_FIELDS, "queue_ms")
# The settings a person sets per conversation (the page's settings panel).
SETTINGS_FIELDS = ("system_prompt", "temperature", "top_p", "max_tokens", "seed", "guardrail")


def guardrail_default() -> bool:
    return settings.GUARDRAIL_DEFAULT


class Folder(models.Model):
    """A person's named group of conversations: a flat list, no nesting.

    Deleting one keeps its conversations; they go back to no folder.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="folders")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # "Work" and "work" would look like one folder in the sidebar.
            models.UniqueConstraint(Lower("name"), "owner", name="chat_folder_name_unique_per_owner")
        ]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    # Sampling settings: what the page sends as `params`, and what a `send`
    # without them uses. A null max_tokens or seed means the server's default
    # (DEFAULT_MAX_TOKENS) and a random seed.
    temperature = models.FloatField(default=0.7)
    top_p = models.FloatField(default=1.0)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    # Prepend Mistral's guardrail prompt to the system prompt (services.system_prompt_for).
    guardrail = models.BooleanField(default=guardrail_default)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped by every new message, so the sidebar can list newest first.
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    # Set only on a temporary chat: unlisted, never exported, deleted from then on (webapp/chat/retention.py).
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The last message of the path shown (webapp/chat/tree.py): the messages
    # form a tree, and this remembers which branch the person is on.
    current_leaf = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Organising (webapp/chat/organise.py): none of these bump `updated_at`.
    folder = models.ForeignKey(
        Folder, on_delete=models.SET_NULL, null=True, blank=True, related_name="conversations"
    )
    pinned = models.BooleanField(default=False)
    # Set while archived: out of the sidebar and the default list, still exported, never deleted for it.
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["owner", "-updated_at"]),
            # The sidebar and /c/ (selectors.listed_conversations): pinned first, then newest,
            # read in order from the index instead of sorting all of a person's (bench/organise.py).
            models.Index(fields=["owner", "-pinned", "-updated_at"], name="chat_conversation_listed_idx"),
        ]

    def __str__(self) -> str:
        return self.title or "New chat"

    @property
    def is_temporary(self) -> bool:
        return self.expires_at is not None

    def chat_settings(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in SETTINGS_FIELDS}


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        QUEUED = "queued"
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        BLOCKED = "blocked"
        FAILED = "failed"

    # A reply in one of these states still has a worker (or a queue slot) behind it.
    LIVE_STATUSES = (Status.QUEUED, Status.STREAMING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # The message this one follows; None for a first message. Siblings (the
    # same parent) are the versions a regenerate or an edit made, oldest first.
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    params = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    queue_ms = models.FloatField(null=True, blank=True)  # from queued to picked up by a worker
    ttft_ms = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    model_name = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "created_at"]),
            # The queue: counted for every queue position, scanned as it moves.
            models.Index(
                fields=["created_at"], condition=models.Q(status="queued"), name="chat_message_queued_idx"
            ),
            # Usage (webapp/usage/selectors.py): a window of days is summed from this index
            # alone, without reading the rows (SQLite's covering index, PostgreSQL's index-only scan).
            models.Index(
                fields=["created_at", "conversation", "role", "prompt_tokens", "completion_tokens"],
                name="chat_message_usage_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save; a new message given no parent continues the path shown.

        That is how messages were added before they formed a tree, and code
        that appends them so (the API, fixtures, scripts) still builds one
        path. The services name each parent (a root too: `explicit_parent`).
        """
        appended = self._state.adding and self.parent_id is None and not self.explicit_parent
        if appended:
            self.parent_id = (
                Conversation.objects.filter(pk=self.conversation_id)
                .values_list("current_leaf_id", flat=True)
                .first()
            )
        super().save(*args, **kwargs)
        if appended:
            Conversation.objects.filter(pk=self.conversation_id).update(current_leaf=self)

    # Set by the services, which choose every parent themselves (None: a new root).
    explicit_parent = False

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES

    def stats(self) -> dict[str, float | int | None]:
        return {name: getattr(self, name) for name in STAT_FIELDS}


class Feedback(models.Model):
    """A person's rating of a reply: 👍 or 👎, with optional reasons and a comment; changed at will.

    One per person and reply (a reply has one owner, who alone can see it).
    Kept for analysis and for datasets (docs/feedback.md).
    """

    class Rating(models.TextChoices):
        UP = "up"
        DOWN = "down"

    class Reason(models.TextChoices):
        ACCURATE = "accurate", "Accurate"
        HELPFUL = "helpful", "Helpful"
        WELL_WRITTEN = "well_written", "Well written"
        INCORRECT = "incorrect", "Not correct"
        UNHELPFUL = "unhelpful", "Not helpful"
        INCOMPLETE = "incomplete", "Incomplete"
        UNSAFE = "unsafe", "Harmful or unsafe"
        OTHER = "other", "Something else"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.CharField(max_length=8, choices=Rating.choices)
    reasons = models.JSONField(default=list, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="chat_feedback_one_per_person")
        ]
        # Rates over time and per rating, for the staff pages to come.
        indexes = [models.Index(fields=["rating", "updated_at"], name="chat_feedback_rating")]

    def __str__(self) -> str:
        return f"{self.rating} on {self.message_id} by {self.user_id}"
