"""User management at /manage/: search, role, groups, limits, approval, deactivation, invitations; all audited."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from webapp.accounts.access import role_of
from webapp.accounts.models import Account, GroupLimits, Invitation
from webapp.chat.models import Conversation, Message
from webapp.moderation.models import AuditLogEntry, Sanction

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-Passw0rd!"


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make(username: str, role: str | None = None, **fields):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)
    if role:
        Account.objects.create(user=user, role=role)
    return user


@pytest.fixture
def admin_user():
    return make("ada", "administrator")


@pytest.fixture
def admin(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def carol():
    return make("carol", email="carol@example.com")


def fresh(user):
    return get_user_model().objects.get(pk=user.pk)


def flashes(client: Client, url: str) -> str:
    return client.get(url).content.decode()


def audited(action: str) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(action=action))


# --- the people list ---------------------------------------------------------------------------


def test_search_shows_role_groups_usage_sanctions_and_last_activity(admin, admin_user, carol) -> None:
    make("dave")
    Group.objects.create(name="researchers").user_set.add(carol)
    conversation = Conversation.objects.create(owner=carol)
    Message.objects.create(conversation=conversation, role="user", content="hi")
    Message.objects.create(
        conversation=conversation, role="assistant", content="hello", prompt_tokens=30, completion_tokens=12
    )
    Sanction.objects.create(user=carol, kind="ban", created_by=admin_user)
    page = admin.get("/manage/users/", {"q": "EXAMPLE.com"})
    assert page.status_code == 200
    row = re.search(rf'<tr id="person-{carol.pk}">(.*?)</tr>', page.content.decode(), re.S).group(1)
    cells = [
        re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
    ]
    assert cells[1:7] == ["active", "user", "researchers", "1", "42", "ban"]
    assert cells[7] != "never"
    assert "dave" not in page.content.decode()  # the search left him out


def test_the_list_takes_a_fixed_number_of_queries(admin, django_assert_max_num_queries) -> None:
    group = Group.objects.create(name="many")
    for index in range(30):
        user = make(f"p{index}", "moderator" if index % 2 else None)
        group.user_set.add(user)
        Message.objects.create(conversation=Conversation.objects.create(owner=user), role="user", content="x")
    with django_assert_max_num_queries(15):
        page = admin.get("/manage/users/")
    assert page.content.decode().count("<td>moderator</td>") == 15


def test_a_pending_sign_up_is_listed_and_approved(admin, admin_user) -> None:
    waiting = make("wes", is_active=False)
    Account.objects.create(user=waiting, approval="pending")
    listing = admin.get("/manage/users/", {"status": "pending"}).content.decode()
    assert "1 waiting for approval" in listing and f'id="person-{waiting.pk}"' in listing
    assert admin.post(f"/manage/users/{waiting.pk}/approve/").status_code == 302
    assert fresh(waiting).is_active and fresh(waiting).account.approval == "approved"
    [entry] = audited("user_approve")
    assert (entry.moderator, entry.target_id) == (admin_user, str(waiting.pk))
    # A second approval is refused, says so and logs nothing.
    admin.post(f"/manage/users/{waiting.pk}/approve/")
    assert "not waiting for approval. Nothing was changed." in flashes(admin, f"/manage/users/{waiting.pk}/")
    assert len(audited("user_approve")) == 1


def test_a_declined_sign_up_stays_out_is_told_so_and_can_still_be_approved(admin) -> None:
    waiting = make("wes", is_active=False)
    Account.objects.create(user=waiting, approval="pending")
    assert admin.post(f"/manage/users/{waiting.pk}/decline/").status_code == 302
    assert fresh(waiting).account.approval == "declined" and not fresh(waiting).is_active
    assert len(audited("user_decline")) == 1
    told = Client().post("/accounts/login/", {"username": "wes", "password": PASSWORD}).content.decode()
    assert "declined this sign-up" in told
    listing = admin.get("/manage/users/", {"status": "declined"}).content.decode()
    assert f'id="person-{waiting.pk}"' in listing and "waiting for approval" not in listing
    # Declined is not deactivated: reactivating is refused; approving (a change of mind) works.
    admin.post(f"/manage/users/{waiting.pk}/reactivate/")
    admin.post(f"/manage/users/{waiting.pk}/decline/")
    assert "not approved" in flashes(admin, f"/manage/users/{waiting.pk}/") and not fresh(waiting).is_active
    assert len(audited("user_decline")) == 1 and not audited("user_reactivate")
    admin.post(f"/manage/users/{waiting.pk}/approve/")
    assert fresh(waiting).is_active and len(audited("user_approve")) == 1


# --- role, groups -------------------------------------------------------------------------------


def test_changing_a_role_is_audited_and_bad_roles_change_nothing(admin, carol) -> None:
    assert admin.post(f"/manage/users/{carol.pk}/role/", {"role": "moderator"}).status_code == 302
    assert role_of(fresh(carol)) == "moderator"
    assert audited("user_role")[0].detail == {"before": "user", "after": "moderator"}
    admin.post(f"/manage/users/{carol.pk}/role/", {"role": "emperor"})
    assert "A role is one of" in flashes(admin, f"/manage/users/{carol.pk}/")
    assert role_of(fresh(carol)) == "moderator" and len(audited("user_role")) == 1


def test_an_administrator_cannot_change_their_own_role_nor_a_superuser_s(admin, admin_user) -> None:
    root = make("root", is_superuser=True)
    admin.post(f"/manage/users/{admin_user.pk}/role/", {"role": "user"})
    admin.post(f"/manage/users/{root.pk}/role/", {"role": "user"})
    admin.post(f"/manage/users/{admin_user.pk}/deactivate/")
    assert role_of(fresh(admin_user)) == "administrator" and fresh(admin_user).is_active
    assert fresh(root).is_superuser and not AuditLogEntry.objects.exists()


def test_groups_are_set_and_unknown_groups_change_nothing(admin, carol) -> None:
    one, two = Group.objects.create(name="one"), Group.objects.create(name="two")
    admin.post(f"/manage/users/{carol.pk}/groups/", {"groups": [one.pk, two.pk]})
    assert set(carol.groups.all()) == {one, two}
    assert audited("user_groups")[0].detail == {"before": [], "after": ["one", "two"]}
    for bad in ([one.pk, 999_999], ["one"], ["1; DROP TABLE"]):
        admin.post(f"/manage/users/{carol.pk}/groups/", {"groups": bad})
        assert "No such group" in flashes(admin, f"/manage/users/{carol.pk}/")
    assert set(carol.groups.all()) == {one, two} and len(audited("user_groups")) == 1
    admin.post(f"/manage/users/{carol.pk}/groups/", {})
    assert not carol.groups.exists()


# --- groups and limits --------------------------------------------------------------------------


LIMITS = {"messages_per_minute": "5", "tokens_per_day": "0", "max_tokens": "", "api_allowed": "no"}


def test_a_group_is_created_and_updated_with_its_limits(admin) -> None:
    admin.post("/manage/groups/", {"name": " Interns ", **LIMITS, "exports_allowed": "default"})
    limits = GroupLimits.objects.get(group__name="Interns")
    assert (limits.messages_per_minute, limits.tokens_per_day, limits.max_tokens) == (5, 0, None)
    assert (limits.api_allowed, limits.exports_allowed) == (False, None)
    admin.post(f"/manage/groups/{limits.group_id}/", {"name": "Interns", **LIMITS, "max_tokens": "256"})
    assert GroupLimits.objects.get().max_tokens == 256
    created, updated = audited("group_create")[0], audited("group_update")[0]
    assert created.detail["after"]["messages_per_minute"] == 5
    assert (updated.detail["before"]["max_tokens"], updated.detail["after"]["max_tokens"]) == (None, 256)
    assert "Interns" in admin.get("/manage/groups/").content.decode()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"messages_per_minute": "-1"}, "messages per minute must be a whole number from 0"),
        ({"tokens_per_day": "1e9"}, "tokens per day must be a whole number"),
        ({"max_tokens": "0"}, "max tokens must be a whole number from 1"),
        ({"max_tokens": "99999999999999"}, "max tokens must be a whole number"),
        ({"api_allowed": "maybe"}, "api allowed is yes, no or default"),
        ({"name": ""}, "Give the group a name"),
        ({"name": "x" * 151}, "over 150 characters"),
    ],
)
def test_bad_limits_are_refused_and_change_nothing(admin, fields, error) -> None:
    existing = Group.objects.create(name="existing")
    GroupLimits.objects.create(group=existing, messages_per_minute=3)
    response = admin.post(f"/manage/groups/{existing.pk}/", {"name": "renamed", **LIMITS, **fields})
    assert response.status_code == 302
    assert error in flashes(admin, "/manage/groups/")
    assert Group.objects.get().name == "existing" and GroupLimits.objects.get().messages_per_minute == 3
    admin.post("/manage/groups/", {"name": "new", **LIMITS, **fields})
    assert Group.objects.count() == 1 and not AuditLogEntry.objects.exists()


def test_a_group_name_is_taken_whatever_its_case(admin) -> None:
    Group.objects.create(name="existing")
    other = Group.objects.create(name="other")
    admin.post(f"/manage/groups/{other.pk}/", {"name": "EXISTING", **LIMITS})
    admin.post("/manage/groups/", {"name": "Existing", **LIMITS})
    assert "A group named &#x27;EXISTING&#x27; exists already" in flashes(admin, "/manage/groups/")
    assert sorted(Group.objects.values_list("name", flat=True)) == ["existing", "other"]
    assert not GroupLimits.objects.exists() and not AuditLogEntry.objects.exists()


def test_unknown_people_and_groups_are_404(admin) -> None:
    assert admin.get("/manage/users/999999/").status_code == 404
    assert admin.post("/manage/users/999999/deactivate/").status_code == 404
    assert admin.post("/manage/groups/999999/", {"name": "x"}).status_code == 404


# --- deactivation ---------------------------------------------------------------------------------


def test_deactivate_and_reactivate_are_audited_and_end_the_session(admin, carol) -> None:
    session = Client()
    session.force_login(carol)
    assert session.get("/c/").status_code == 200
    admin.post(f"/manage/users/{carol.pk}/deactivate/")
    assert not fresh(carol).is_active
    assert session.get("/c/").status_code == 302  # logged out at the next page
    admin.post(f"/manage/users/{carol.pk}/deactivate/")  # again: nothing more happens
    assert len(audited("user_deactivate")) == 1
    admin.post(f"/manage/users/{carol.pk}/reactivate/")
    assert fresh(carol).is_active and len(audited("user_reactivate")) == 1


# --- invitations -------------------------------------------------------------------------------------


def test_an_invitation_link_is_shown_once_and_audited(admin, admin_user) -> None:
    group = Group.objects.create(name="guests")
    assert (
        admin.post("/manage/invitations/", {"note": "for Zoe", "days": "3", "group": group.pk}).status_code
        == 302
    )
    page = admin.get("/manage/invitations/")
    link = re.search(r'<code id="new-invitation-link">([^<]+)</code>', page.content.decode()).group(1)
    assert "/accounts/invitation/" in link and page["Cache-Control"] == "no-store"
    assert "new-invitation-link" not in admin.get("/manage/invitations/").content.decode()
    invitation = Invitation.objects.get()
    assert (invitation.note, invitation.group, invitation.created_by) == ("for Zoe", group, admin_user)
    assert audited("invitation_create")[0].detail == {"note": "for Zoe", "group": "guests", "days": 3}


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"days": "0"}, "1 to 90 days"),
        ({"days": "-3"}, "1 to 90 days"),
        ({"days": "91"}, "1 to 90 days"),
        ({"days": "seven"}, "1 to 90 days"),
        ({"days": "7", "group": "424242"}, "No such group"),
        ({"days": "7", "note": "x" * 201}, "under 200 characters"),
    ],
)
def test_bad_invitations_are_refused(admin, fields, error) -> None:
    admin.post("/manage/invitations/", fields)
    assert error in flashes(admin, "/manage/invitations/")
    assert not Invitation.objects.exists() and not AuditLogEntry.objects.exists()
