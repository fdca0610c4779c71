"""Writes of user management: roles, groups and their limits, deactivation, approval (docs/identity.md).

Each write is checked first (AccountInputError, nothing changed), done in one
transaction with its audit log entry, and closes the person's open sockets
after commit where it takes their access away.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.utils import timezone

from webapp.accounts.access import LIMIT_FIELDS, forget_role, role_of
from webapp.accounts.audit import audit_record
from webapp.accounts.models import Account, GroupLimits, Role
from webapp.chat import live as chat_live

DEACTIVATED_MESSAGE = "An administrator has deactivated this account; the chat is closed."
COUNT_FIELDS = ("messages_per_minute", "tokens_per_day", "max_tokens")
MAX_COUNT = 2**31 - 1  # what PositiveIntegerField holds on every database
MAX_GROUP_NAME = Group._meta.get_field("name").max_length


class AccountInputError(Exception):
    """Input a user management write refuses; `code` is stable, `message` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _account(user: AbstractBaseUser) -> Account:
    account, _ = Account.objects.select_for_update().get_or_create(user=user)
    return account


def _check_other(administrator: AbstractBaseUser, user: AbstractBaseUser, what: str) -> None:
    if user.pk == administrator.pk:
        raise AccountInputError(
            "self", f"Administrators cannot {what} themselves; ask another administrator."
        )
    if user.is_superuser:
        raise AccountInputError(
            "superuser", "A superuser is managed in the Django admin (/admin/), not here."
        )


# --- role ----------------------------------------------------------------------------------


def check_role(role: object) -> Role:
    if role not in Role.values:
        raise AccountInputError("invalid_role", f"A role is one of: {', '.join(Role.values)}.")
    return Role(role)


def account_set_role(*, administrator: AbstractBaseUser | None, user: AbstractBaseUser, role: object) -> Role:
    """Give `user` a role. Demoting to `user` also takes Django's staff flag (it counts as moderator).

    `administrator` None is `manage.py set_role`: no rights to check, and the
    audit entry names the person changed, with `via`.
    """
    new = check_role(role)
    if administrator is not None:
        _check_other(administrator, user, "change the role of")
    with transaction.atomic():
        before = role_of(user)
        account = _account(user)
        account.role = new
        account.save(update_fields=["role"])
        if new == Role.USER and user.is_staff:
            user.is_staff = False
            user.save(update_fields=["is_staff"])
        forget_role(user)
        audit_record(
            actor=administrator or user,
            action="user_role",
            target_type="user",
            target_id=user.pk,
            detail={
                "before": before.value,
                "after": new.value,
                **({} if administrator else {"via": "manage.py set_role"}),
            },
        )
    return role_of(user)


# --- groups ---------------------------------------------------------------------------------


def check_groups(group_ids: list[object]) -> list[Group]:
    """The groups of these ids, or AccountInputError naming the first unknown one."""
    wanted: list[int] = []
    for raw in group_ids:
        try:
            wanted.append(int(str(raw)))
        except ValueError:
            raise AccountInputError("unknown_group", f"No such group: {str(raw)[:40]!r}.") from None
    groups = {group.pk: group for group in Group.objects.filter(pk__in=wanted)}
    for group_id in wanted:
        if group_id not in groups:
            raise AccountInputError("unknown_group", f"No such group: {group_id}.")
    return [groups[group_id] for group_id in dict.fromkeys(wanted)]


def account_set_groups(
    *, administrator: AbstractBaseUser, user: AbstractBaseUser, group_ids: list[object]
) -> list[Group]:
    """Make `user`'s groups exactly these (their limits follow at the next send)."""
    groups = check_groups(group_ids)
    with transaction.atomic():
        groups_replace(actor=administrator, user=user, groups=groups)
    return groups


def groups_replace(
    *, actor: AbstractBaseUser, user: AbstractBaseUser, groups: list[Group], **detail: object
) -> None:
    """Set `user`'s groups, audited with before and after (and `detail`), in the caller's transaction.

    Also single sign-on's, when groups follow the provider's claim (webapp.accounts.sso).
    """
    before = sorted(user.groups.values_list("name", flat=True))
    user.groups.set(groups)
    audit_record(
        actor=actor,
        action="user_groups",
        target_type="user",
        target_id=user.pk,
        detail={"before": before, "after": sorted(group.name for group in groups), **detail},
    )


# --- active or not ---------------------------------------------------------------------------


def account_deactivate(*, administrator: AbstractBaseUser, user: AbstractBaseUser) -> AbstractBaseUser:
    """Stop `user` from logging in or using the API; their open sockets close now. Idempotent."""
    _check_other(administrator, user, "deactivate")
    with transaction.atomic():
        if not user.is_active:
            return user
        user.is_active = False
        user.save(update_fields=["is_active"])
        forget_role(user)
        audit_record(
            actor=administrator, action="user_deactivate", target_type="user", target_id=user.pk, detail={}
        )
        # Sessions and API keys of an inactive user already fail (Django's backend, the API's
        # key check); the sockets opened before would live on without this.
        user_id = user.pk
        transaction.on_commit(
            lambda: chat_live.sessions_end(user_id, code="deactivated", message=DEACTIVATED_MESSAGE),
            robust=True,
        )
    return user


def account_reactivate(*, administrator: AbstractBaseUser, user: AbstractBaseUser) -> AbstractBaseUser:
    """Let a deactivated person in again; a sign-up waiting for approval is approved instead."""
    _check_other(administrator, user, "reactivate")
    with transaction.atomic():
        account = _account(user)
        if account.approval != Account.Approval.APPROVED:
            raise AccountInputError("pending", "This sign-up was not approved: approve it instead.")
        if user.is_active:
            return user
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_record(
            actor=administrator, action="user_reactivate", target_type="user", target_id=user.pk, detail={}
        )
    return user


def account_approve(*, administrator: AbstractBaseUser, user: AbstractBaseUser) -> Account:
    """Approve a sign-up that waits (SIGNUP_MODE=approval), or one declined before: the person can log in."""
    with transaction.atomic():
        account = _account(user)
        if account.approval == Account.Approval.APPROVED:
            raise AccountInputError("not_pending", "This account is not waiting for approval.")
        account.approval, account.approved_by, account.approved_at = (
            Account.Approval.APPROVED,
            administrator,
            timezone.now(),
        )
        account.save(update_fields=["approval", "approved_by", "approved_at"])
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_record(
            actor=administrator, action="user_approve", target_type="user", target_id=user.pk, detail={}
        )
    return account


def account_decline(*, administrator: AbstractBaseUser, user: AbstractBaseUser) -> Account:
    """Say no to a sign-up that waits: the account stays inactive and is told so at log-in."""
    with transaction.atomic():
        account = _account(user)
        if account.approval != Account.Approval.PENDING:
            raise AccountInputError("not_pending", "This account is not waiting for approval.")
        account.approval = Account.Approval.DECLINED
        account.save(update_fields=["approval"])
        audit_record(
            actor=administrator, action="user_decline", target_type="user", target_id=user.pk, detail={}
        )
    return account


# --- groups and their limits --------------------------------------------------------------------


def check_group_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise AccountInputError("invalid_name", "Give the group a name.")
    name = " ".join(name.split())
    if len(name) > MAX_GROUP_NAME:
        raise AccountInputError("invalid_name", f"The name is over {MAX_GROUP_NAME} characters.")
    return name


def check_limits(raw: dict[str, object]) -> dict[str, Any]:
    """Limits from a form's text: blank is the default; counts are whole numbers ≥ 0 (max_tokens ≥ 1)."""
    unknown = sorted(set(raw) - set(LIMIT_FIELDS))
    if unknown:
        raise AccountInputError("invalid_limits", f"Unknown limit {unknown[0][:40]!r}.")
    limits: dict[str, Any] = {}
    for name in COUNT_FIELDS:
        value = raw.get(name)
        text = "" if value is None else str(value).strip()
        if not text:
            limits[name] = None
            continue
        low = 1 if name == "max_tokens" else 0
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= MAX_COUNT:
            raise AccountInputError(
                "invalid_limits",
                f"{name.replace('_', ' ')} must be a whole number from {low} up, or blank for the default.",
            )
        limits[name] = int(text)
    for name in ("api_allowed", "exports_allowed"):
        value = raw.get(name)
        choices = {"": None, None: None, "default": None, "yes": True, "no": False, True: True, False: False}
        if not isinstance(value, str | bool | None) or value not in choices:
            raise AccountInputError("invalid_limits", f"{name.replace('_', ' ')} is yes, no or default.")
        limits[name] = choices[value]
    return limits


def group_save(
    *, administrator: AbstractBaseUser, group: Group | None, name: object, limits: dict[str, object]
) -> Group:
    """Create a group (`group` None) or rename it, with its limits; audited with before and after."""
    name = check_group_name(name)
    checked = check_limits(limits)
    clash = Group.objects.filter(name__iexact=name)
    if group is not None:
        clash = clash.exclude(pk=group.pk)
    if clash.exists():
        raise AccountInputError("name_taken", f"A group named {name!r} exists already.")
    with transaction.atomic():
        created = group is None
        if group is None:
            group = Group.objects.create(name=name)
        row, _ = GroupLimits.objects.select_for_update().get_or_create(group=group)
        before = {"name": group.name, **{field: getattr(row, field) for field in LIMIT_FIELDS}}
        group.name = name
        group.save(update_fields=["name"])
        for field, value in checked.items():
            setattr(row, field, value)
        row.save()
        audit_record(
            actor=administrator,
            action="group_create" if created else "group_update",
            target_type="group",
            target_id=group.pk,
            detail={"before": None if created else before, "after": {"name": name, **checked}},
        )
    return group
