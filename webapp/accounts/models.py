"""Who a person is to the site (role, approval), what their groups allow, invitations (docs/identity.md), and what they set for their own account."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator
from django.db import models


class Role(models.TextChoices):
    """A ladder: each role can do everything the one below it can."""

    USER = "user"
    MODERATOR = "moderator"
    ADMINISTRATOR = "administrator"


class Account(models.Model):
    """The site's side of a user: their role and whether their sign-up was approved.

    A user without a row is an approved ordinary user (every account made
    before this table, and by `createsuperuser`). Read it through
    `webapp.accounts.access`, never directly.
    """

    class Approval(models.TextChoices):
        APPROVED = "approved"
        PENDING = "pending"  # signed up under SIGNUP_MODE=approval; is_active stays off until approved
        DECLINED = "declined"  # an administrator said no: stays inactive, and is told so at log-in

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="account"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.USER)
    approval = models.CharField(max_length=10, choices=Approval.choices, default=Approval.APPROVED)
    # How the account was made: "signup", "invitation", "command", later "sso".
    created_via = models.CharField(max_length=20, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.user_id}: {self.role}, {self.approval}"


class GroupLimits(models.Model):
    """What the members of one Django group may do; a blank value means the site's default.

    A person's limits are the most generous over their groups (`access.limits_for`).
    For the two counts, 0 means no limit, as in the settings.
    """

    group = models.OneToOneField(Group, on_delete=models.CASCADE, primary_key=True, related_name="limits")
    messages_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_day = models.PositiveIntegerField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    api_allowed = models.BooleanField(null=True, blank=True)
    exports_allowed = models.BooleanField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "group limits"

    def __str__(self) -> str:
        return f"limits of {self.group_id}"


class Invitation(models.Model):
    """A one-time sign-up link: only the SHA-256 of its token is stored; the link is shown once."""

    token_hash = models.CharField(max_length=64, unique=True)
    # Who it is for, as the administrator wrote it: shown in the list, not checked.
    note = models.CharField(max_length=200, blank=True)
    # The person who signs up with it joins this group.
    group = models.ForeignKey(Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invitation {self.pk} ({self.note or 'no note'})"


class AccountSettings(models.Model):
    """A person's own choices; a person who never chose has no row and gets the defaults."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_settings"
    )
    # Delete my conversations untouched for this many days; null: as long as the deployment
    # keeps them (RETENTION_DAYS). Never longer than that in effect (webapp/chat/retention.py).
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "account settings"

    def __str__(self) -> str:
        return f"settings of {self.user_id}"


class SsoIdentity(models.Model):
    """A person as one OpenID Connect provider knows them: its `sub`, stable where e-mails are not."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities"
    )
    provider = models.CharField(max_length=40)  # OIDC_PROVIDERS' id
    subject = models.CharField(max_length=255)  # the ID token's `sub`
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "subject"], name="sso_identity_unique")]
        verbose_name_plural = "SSO identities"

    def __str__(self) -> str:
        return f"{self.provider}:{self.subject} -> {self.user_id}"
