from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from webapp.api.models import ApiConversation, ApiKey
from webapp.api.services import api_key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "owner__username")
    readonly_fields = ("owner", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    fields = ("name", *readonly_fields)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key is made by its owner, who alone sees it once

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(ApiConversation)
class ApiConversationAdmin(admin.ModelAdmin):
    """Which key made which conversation (moderation events reach a key through it)."""

    list_display = ("conversation", "api_key", "stored", "created_at")
    list_filter = ("stored",)
    search_fields = ("api_key__prefix", "api_key__owner__username")
    readonly_fields = ("conversation", "api_key", "stored", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
