"""The access layer: roles from the role field and Django's flags, limits merged over groups, set_role."""

from __future__ import annotations

from importlib import import_module
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group
from django.core.management import CommandError, call_command
from django.test import Client

from webapp.accounts import access
from webapp.accounts.access import Limits, default_limits, limits_for, most_generous, role_of
from webapp.accounts.models import Account, GroupLimits, Role
from webapp.moderation.models import AuditLogEntry

PASSWORD = "a-long-Passw0rd!"


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def person(username: str, *, role: str | None = None, **flags: bool):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **flags)
    if role is not None:
        Account.objects.create(user=user, role=role)
    return get_user_model().objects.get(pk=user.pk)  # no cached role


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "flags", "expected"),
    [
        (None, {}, Role.USER),
        ("moderator", {}, Role.MODERATOR),
        ("administrator", {}, Role.ADMINISTRATOR),
        (None, {"is_staff": True}, Role.MODERATOR),  # staff from before roles keep the dashboard
        ("administrator", {"is_staff": True}, Role.ADMINISTRATOR),
        (None, {"is_superuser": True}, Role.ADMINISTRATOR),
        ("user", {"is_superuser": True}, Role.ADMINISTRATOR),
        ("administrator", {"is_active": False}, Role.USER),  # deactivated: no rights at all
    ],
)
def test_role_of(role, flags, expected) -> None:
    user = person("p", role=role, **flags)
    assert role_of(user) == expected
    assert access.can_moderate(user) == (expected != Role.USER)
    assert access.can_manage_users(user) == (expected == Role.ADMINISTRATOR)


def test_anonymous_is_nobody() -> None:
    assert role_of(AnonymousUser()) == Role.USER and not access.can_moderate(AnonymousUser())


# --- limits ---------------------------------------------------------------------------------

DEFAULTS = Limits(
    messages_per_minute=20, tokens_per_day=1000, max_tokens=512, api_allowed=True, exports_allowed=True
)


def row(**values) -> GroupLimits:
    return GroupLimits(**values)


def test_no_group_gets_the_defaults() -> None:
    assert most_generous([], DEFAULTS) == DEFAULTS


def test_blank_values_are_the_defaults_and_a_group_can_restrict() -> None:
    restricted = most_generous(
        [row(messages_per_minute=2, api_allowed=False, exports_allowed=False)], DEFAULTS
    )
    assert restricted == Limits(2, 1000, 512, False, False)


def test_the_most_generous_of_several_groups_wins_per_limit_and_zero_is_no_limit() -> None:
    merged = most_generous(
        [
            row(messages_per_minute=5, tokens_per_day=0, max_tokens=100, api_allowed=False),
            row(messages_per_minute=50, tokens_per_day=20, max_tokens=2048, exports_allowed=False),
        ],
        DEFAULTS,
    )
    assert merged == Limits(50, 0, 2048, True, True)


def test_max_tokens_is_held_to_the_context(settings) -> None:
    settings.CONTEXT_LIMIT = 1000
    assert most_generous([row(max_tokens=10**6)], DEFAULTS).max_tokens == 999


@pytest.mark.django_db
def test_limits_for_reads_the_person_s_groups(settings) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_MINUTE = 7
    alice, bob = person("alice"), person("bob")
    generous = Group.objects.create(name="generous")
    GroupLimits.objects.create(group=generous, messages_per_minute=100, api_allowed=False)
    Group.objects.create(name="no limits row").user_set.add(alice)  # a group without limits adds nothing
    generous.user_set.add(alice)
    assert limits_for(alice).messages_per_minute == 100 and not limits_for(alice).api_allowed
    assert limits_for(bob) == default_limits() and limits_for(bob).messages_per_minute == 7


@pytest.mark.django_db
def test_the_send_path_s_one_query_agrees_with_limits_for_and_refuses_the_inactive(
    django_assert_num_queries,
) -> None:
    wide, narrow = Group.objects.create(name="wide"), Group.objects.create(name="narrow")
    GroupLimits.objects.create(group=wide, tokens_per_day=0, max_tokens=100)
    GroupLimits.objects.create(group=narrow, messages_per_minute=1, api_allowed=False)
    bare = Group.objects.create(name="bare")  # no limits row: adds nothing
    people = [person("none"), person("one"), person("two"), person("bare-only")]
    wide.user_set.add(people[1], people[2])
    narrow.user_set.add(people[2])
    bare.user_set.add(people[2], people[3])
    for user in people:
        with django_assert_num_queries(1):
            merged = access.active_limits_for_id(user.pk)
        assert merged == limits_for(user), user.username
    people[2].is_active = False
    people[2].save()
    assert access.active_limits_for_id(people[2].pk) is None
    assert access.active_limits_for_id(10**9) is None


# --- set_role -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_set_role_gives_a_role_and_audits_it() -> None:
    carol = person("carol")
    out = StringIO()
    call_command("set_role", "carol", "moderator", stdout=out)
    assert "carol is now moderator" in out.getvalue()
    assert role_of(person_again(carol)) == Role.MODERATOR
    entry = AuditLogEntry.objects.get(action="user_role")
    assert entry.target_id == str(carol.pk)
    assert entry.detail == {"before": "user", "after": "moderator", "via": "manage.py set_role"}
    call_command("set_role", "carol", "administrator", stdout=StringIO())
    assert access.can_manage_users(person_again(carol))


@pytest.mark.django_db
def test_demoting_staff_to_user_takes_the_staff_flag_too() -> None:
    sam = person("sam", is_staff=True)
    call_command("set_role", "sam", "user", stdout=StringIO())
    sam = person_again(sam)
    assert not sam.is_staff and role_of(sam) == Role.USER


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "error"), [(["nobody", "user"], "No user named"), (["carol", "god"], "role is one of")]
)
def test_set_role_refuses_bad_input_and_changes_nothing(args, error) -> None:
    carol = person("carol")
    with pytest.raises(CommandError, match=error):
        call_command("set_role", *args, stdout=StringIO())
    assert role_of(person_again(carol)) == Role.USER and not AuditLogEntry.objects.exists()
    assert not Account.objects.exists()


def person_again(user):
    return get_user_model().objects.get(pk=user.pk)


@pytest.mark.django_db
def test_the_migration_gives_existing_staff_their_roles() -> None:
    migration = import_module("webapp.accounts.migrations.0002_roles_for_existing_staff")
    admin, staff, plain = person("root", is_superuser=True), person("sam", is_staff=True), person("pat")
    migration.staff_roles(apps, None)
    roles = dict(Account.objects.values_list("user_id", "role"))
    assert roles == {admin.pk: "administrator", staff.pk: "moderator"} and plain.pk not in roles
    assert person_again(staff).is_staff  # they keep /admin/
    migration.forget_staff_roles(apps, None)
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_a_superuser_edits_a_group_s_limits_in_the_admin() -> None:
    client = Client()
    client.force_login(person("root", is_superuser=True, is_staff=True))
    group = Group.objects.create(name="trial")
    page = client.get(f"/admin/auth/group/{group.pk}/change/")
    assert page.status_code == 200 and "limits-0-messages_per_minute" in page.content.decode()
    for url in ("/admin/accounts/account/", "/admin/accounts/invitation/"):
        assert client.get(url).status_code == 200
