"""Staff views of conversations and messages, and the export of selected conversations."""

import json
from collections.abc import Iterator

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from webapp.chat import datasets
from webapp.chat.export_views import stream_download, zip_download
from webapp.chat.exports import conversations_with_messages, export_zip
from webapp.chat.models import Conversation, Feedback, Message
from webapp.chat.selectors import without_temporary


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("role", "status", "content", "parent", "completion_tokens", "created_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "created_at", "updated_at", "expires_at")
    list_filter = ("created_at", "pinned", ("archived_at", admin.EmptyFieldListFilter))
    search_fields = ("title", "owner__username")
    # Ids, not selects: a select would list every message of the database.
    raw_id_fields = ("owner", "current_leaf", "folder")
    inlines = [MessageInline]
    actions = ["export_selected", "export_preference_pairs", "export_rated_replies"]

    @admin.action(description="Export selected conversations (zip of JSON; temporary chats left out)")
    def export_selected(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> StreamingHttpResponse:
        exported_at = timezone.now()
        return zip_download(
            request,
            export_zip(without_temporary(queryset), "json", exported_at=exported_at),
            filename=f"conversations-{exported_at:%Y-%m-%d-%H%M%S}-json.zip",
        )

    @admin.action(
        description="Export preference pairs of the selected conversations (DPO JSONL; temporary chats left out)"
    )
    def export_preference_pairs(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> StreamingHttpResponse:
        return _dataset_download(request, queryset, "dpo")

    @admin.action(
        description="Export rated replies of the selected conversations (JSONL; temporary chats left out)"
    )
    def export_rated_replies(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> StreamingHttpResponse:
        return _dataset_download(request, queryset, "rated")


def _dataset_download(
    request: HttpRequest, conversations: QuerySet[Conversation], dataset_format: str
) -> StreamingHttpResponse:
    """The command's `--format dpo|rated --with-moderation`, streamed (docs/exports.md)."""
    moderation = datasets.moderation_annotations()

    def lines() -> Iterator[bytes]:
        for conversation in conversations_with_messages(without_temporary(conversations)):
            for line in datasets.dataset_lines(
                conversation, conversation.export_messages, dataset_format, moderation=moderation
            ):
                yield (json.dumps(line, ensure_ascii=False, cls=DjangoJSONEncoder) + "\n").encode()

    return stream_download(
        request,
        lines(),
        filename=f"conversations-{timezone.now():%Y-%m-%d-%H%M%S}-{dataset_format}.jsonl",
        content_type="application/jsonl; charset=utf-8",
    )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "status", "completion_tokens", "created_at")
    list_filter = ("role", "status")
    search_fields = ("content",)
    raw_id_fields = ("conversation", "parent")


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("rating", "message", "user", "updated_at")
    list_filter = ("rating", "updated_at")
    search_fields = ("comment", "user__username")
    raw_id_fields = ("message", "user")
