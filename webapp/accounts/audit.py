"""Administrators' actions in the audit log (the moderators' AuditLogEntry, one log for the site)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from webapp.moderation.models import AuditLogEntry


def audit_record(
    *, actor: AbstractBaseUser, action: str, target_type: str, target_id: object, detail: dict[str, Any]
) -> AuditLogEntry:
    """One entry in the caller's transaction. Not sent to the moderators' live feed: it is not theirs."""
    return AuditLogEntry.objects.create(
        moderator=actor, action=action, target_type=target_type, target_id=str(target_id), detail=detail
    )
