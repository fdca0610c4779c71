"""Staff views of conversations and messages, and the export of selected conversations."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from webapp.chat.export_views import zip_download
from webapp.chat.exports import export_zip
from webapp.chat.models import Conversation, Feedback, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("role", "status", "content", "parent", "completion_tokens", "created_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "created_at", "updated_at")
    list_filter = ("created_at",)
    search_fields = ("title", "owner__username")
    # Ids, not selects: a select would list every message of the database.
    raw_id_fields = ("owner", "current_leaf")
    inlines = [MessageInline]
    actions = ["export_selected"]

    @admin.action(description="Export selected conversations (zip of JSON)")
    def export_selected(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> StreamingHttpResponse:
        exported_at = timezone.now()
        return zip_download(
            request,
            export_zip(queryset, "json", exported_at=exported_at),
            filename=f"conversations-{exported_at:%Y-%m-%d-%H%M%S}-json.zip",
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
