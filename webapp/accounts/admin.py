"""The Django admin's view of identity, for superusers: roles, a group's limits beside it, invitations.

Day-to-day work is /manage/ (audited in the site's audit log); the admin
keeps Django's own history of what is changed here.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from webapp.accounts.models import Account, GroupLimits, Invitation, SsoIdentity


class GroupLimitsInline(admin.StackedInline):
    model = GroupLimits
    can_delete = False
    extra = 1
    max_num = 1


class GroupWithLimitsAdmin(GroupAdmin):
    inlines = [GroupLimitsInline]


admin.site.unregister(Group)
admin.site.register(Group, GroupWithLimitsAdmin)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("user", "role", "approval", "created_via", "approved_at")
    list_filter = ("role", "approval", "created_via")
    search_fields = ("user__username", "user__email")
    readonly_fields = ("user", "created_via", "approved_at", "approved_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made with the user (sign-up, invitation, set_role)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read-only: a link is made at /manage/invitations/, the one place its token is ever shown."""

    list_display = ("note", "group", "created_by", "created_at", "expires_at", "used_at", "used_by")
    readonly_fields = (
        "token_hash",
        "note",
        "group",
        "created_by",
        "created_at",
        "expires_at",
        "used_at",
        "used_by",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    """Read-only, but deletable: unlinking a wrong link lets the next sign-in link (or make) again."""

    list_display = ("user", "provider", "subject", "created_at", "last_login_at")
    list_filter = ("provider",)
    search_fields = ("user__username", "user__email", "subject")
    readonly_fields = ("user", "provider", "subject", "created_at", "last_login_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SsoIdentity | None = None) -> bool:
        return False
