from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from webapp.moderation import services
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


class SanctionForm(forms.ModelForm):
    class Meta:
        model = Sanction
        fields = ("user", "kind", "until", "reason")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "user" in data and "kind" in data:
            try:
                services.check_sanction(
                    moderator=self.moderator,
                    user=data["user"],
                    kind=data["kind"],
                    until=data.get("until"),
                    reason=data.get("reason", ""),
                )
            except services.ModerationInputError as error:
                raise forms.ValidationError(error.message, code=error.code) from None
        return data


@admin.register(Sanction)
class SanctionAdmin(admin.ModelAdmin):
    """Added through the moderation services (audited); read-only once made (revoke on the dashboard)."""

    form = SanctionForm
    list_display = ("created_at", "user", "kind", "until", "created_by", "revoked_at")
    list_filter = ("kind",)
    search_fields = ("user__username", "reason")
    raw_id_fields = ("user",)

    def get_form(
        self, request: HttpRequest, obj: Sanction | None = None, **kwargs: Any
    ) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, **kwargs)
        form.moderator = request.user
        return form

    def get_readonly_fields(self, request: HttpRequest, obj: Sanction | None = None) -> list[str]:
        return [f.name for f in Sanction._meta.fields] if obj else []

    def save_model(self, request: HttpRequest, obj: Sanction, form: forms.ModelForm, change: bool) -> None:
        if change:
            return  # read-only once made
        made = services.sanction_apply(
            moderator=request.user, user=obj.user, kind=obj.kind, until=obj.until, reason=obj.reason
        )
        obj.pk = made.pk

    def has_delete_permission(self, request: HttpRequest, obj: Sanction | None = None) -> bool:
        return False


@admin.register(CategoryPolicy)
class CategoryPolicyAdmin(admin.ModelAdmin):
    """The nine policies are seeded; a change goes through the moderation services (audited)."""

    list_display = ("category", "action", "threshold", "updated_by", "updated_at")
    readonly_fields = ("category", "updated_by", "updated_at")

    def save_model(
        self, request: HttpRequest, obj: CategoryPolicy, form: forms.ModelForm, change: bool
    ) -> None:
        services.policy_update(
            moderator=request.user, category=obj.category, action=obj.action, threshold=obj.threshold
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CategoryPolicy | None = None) -> bool:
        return False


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
