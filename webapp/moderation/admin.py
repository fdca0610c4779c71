from django.contrib import admin

from webapp.moderation.models import ModerationEvent, Rule


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ("pattern", "kind", "category", "action", "enabled", "created_at")
    list_filter = ("kind", "category", "action", "enabled")
    search_fields = ("pattern",)


@admin.register(ModerationEvent)
class ModerationEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "stage", "hook", "user", "message")
    list_filter = ("action", "stage", "hook")
    search_fields = ("reason", "excerpt", "user__username")
    raw_id_fields = ("message", "user")
    readonly_fields = [f.name for f in ModerationEvent._meta.fields]
