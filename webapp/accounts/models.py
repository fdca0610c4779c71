"""What a person sets for their own account."""

from __future__ import annotations

from django.conf import settings
from django.db import models


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
