from django.contrib import admin
from django.http import HttpRequest

from webapp.moderation.models import (
    AuditLogEntry,
    CategoryPolicy,
    HiddenReply,
    ModerationEvent,
    Report,
    Rule,
    Sanction,
)


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ("pattern", "kind", "category", "action", "enabled", "created_at")
    list_filter = ("kind", "category", "action", "enabled")
    search_fields = ("pattern",)


@admin.register(ModerationEvent)
class ModerationEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "stage", "hook", "category", "status", "user", "message")
    list_filter = ("status", "action", "stage", "hook", "category")
    search_fields = ("reason", "excerpt", "user__username")
    raw_id_fields = ("message", "user", "reviewed_by")
    readonly_fields = [f.name for f in ModerationEvent._meta.fields if f.name not in ("status",)]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("created_at", "reason", "status", "reporter", "message")
    list_filter = ("status", "reason")
    search_fields = ("detail", "reporter__username")
    raw_id_fields = ("reporter", "message", "resolved_by")


@admin.register(Sanction)
class SanctionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "kind", "until", "created_by", "revoked_at")
    list_filter = ("kind",)
    search_fields = ("user__username", "reason")
    raw_id_fields = ("user", "created_by", "revoked_by")


@admin.register(CategoryPolicy)
class CategoryPolicyAdmin(admin.ModelAdmin):
    list_display = ("category", "action", "threshold", "updated_by", "updated_at")
    readonly_fields = ("updated_by", "updated_at")


@admin.register(HiddenReply)
class HiddenReplyAdmin(admin.ModelAdmin):
    list_display = ("message", "hidden_by", "hidden_at")
    raw_id_fields = ("message", "hidden_by")


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    """Read-only: the log is written by the moderation services alone."""

    list_display = ("created_at", "moderator", "action", "target_type", "target_id")
    list_filter = ("action", "target_type")
    search_fields = ("moderator__username", "target_id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditLogEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditLogEntry | None = None) -> bool:
        return False
