"""Usage pages and their numbers, against a seeded history: per day, per person, per API key, CSV; who may see what."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from webapp.api.models import ApiConversation
from webapp.api.services import api_key_create
from webapp.chat import quotas
from webapp.chat.models import Conversation, Message
from webapp.usage import selectors
from webapp.usage.selectors import DIMENSIONS, Usage, Window

pytestmark = pytest.mark.django_db

TODAY = timezone.now().astimezone(dt.UTC).date()
D0, D1, D2, OLD = (
    TODAY,
    TODAY - dt.timedelta(days=1),
    TODAY - dt.timedelta(days=2),
    TODAY - dt.timedelta(days=40),
)


def exchange(conversation: Conversation, day: dt.date, tokens_in: int, tokens_out: int) -> None:
    """One message and its reply, stored on `day` (at noon UTC)."""
    at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    user = Message.objects.create(conversation=conversation, role="user", content="q")
    reply = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="a",
        prompt_tokens=tokens_in,
        completion_tokens=tokens_out,
    )
    Message.objects.filter(pk__in=[user.pk, reply.pk]).update(created_at=at)


@pytest.fixture
def history():
    """Alice: two exchanges two days ago, one today, one 40 days ago; Bob: one today, one through his API key yesterday."""
    make = get_user_model().objects.create_user
    alice, bob = make(username="alice", password="x" * 12), make(username="bob", password="x" * 12)
    staff = make(username="root", password="x" * 12, is_staff=True, is_superuser=True)
    chat = Conversation.objects.create(owner=alice)
    exchange(chat, D2, 10, 20)
    exchange(chat, D2, 5, 7)
    exchange(chat, D0, 100, 200)
    exchange(chat, OLD, 1000, 1000)
    exchange(Conversation.objects.create(owner=bob), D0, 3, 4)
    key, _ = api_key_create(owner=bob, name='=HYPERLINK("http://evil")')
    api_chat = Conversation.objects.create(owner=bob)
    ApiConversation.objects.create(conversation=api_chat, api_key=key)
    exchange(api_chat, D1, 50, 60)
    # A queued reply has no tokens yet: it counts as a reply, adds none.
    Message.objects.create(conversation=chat, role="assistant", status="queued")
    return {"alice": alice, "bob": bob, "staff": staff, "key": key}


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows_of(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


WINDOW = {"from": D2.isoformat(), "to": D0.isoformat()}


def test_per_day_of_a_person(history) -> None:
    window = Window(D2, D0)
    alice = selectors.usage_of_person(window, history["alice"].pk)
    assert alice == {D2: Usage(2, 2, 15, 27), D0: Usage(1, 2, 100, 200)}  # the queued reply is today's
    assert selectors.usage_of_person(window, history["bob"].pk) == {
        D1: Usage(1, 1, 50, 60),
        D0: Usage(1, 1, 3, 4),
    }
    assert selectors.usage_of_person(Window(OLD, OLD), history["alice"].pk) == {OLD: Usage(1, 1, 1000, 1000)}


def test_per_person_and_per_key(history) -> None:
    window = Window(D2, D0)
    people = selectors.usage_by(DIMENSIONS["people"], window)
    assert list(people) == [history["alice"].pk, history["bob"].pk]  # most tokens first
    assert people[history["alice"].pk] == Usage(3, 4, 115, 227)
    assert people[history["bob"].pk] == Usage(2, 2, 53, 64)
    assert selectors.usage_by(DIMENSIONS["keys"], window) == {history["key"].pk: Usage(1, 1, 50, 60)}
    assert selectors.usage_per_day(window, dimension=DIMENSIONS["keys"]) == {D1: Usage(1, 1, 50, 60)}
    assert selectors.usage_per_day(window) == {
        D2: Usage(2, 2, 15, 27),
        D1: Usage(1, 1, 50, 60),
        D0: Usage(2, 3, 103, 204),
    }


def test_my_page_shows_my_usage_and_limits(history, settings) -> None:
    settings.QUOTA_TOKENS_PER_DAY = 100_000
    # Redis outlives the test database: an earlier test may have counted tokens for this user id.
    today = quotas.tokens_used_today(user_id=history["alice"].pk) + 25_000
    quotas.record_tokens(user_id=history["alice"].pk, tokens=25_000)
    response = as_user(history["alice"]).get("/usage/", WINDOW)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="total-tokens-in">115<' in page and 'id="total-tokens-out">227<' in page
    assert 'id="total-messages">3<' in page and 'id="total-replies">4<' in page
    assert f'id="tokens-today">{today:,}<' in page
    assert f"of <strong>100,000</strong> tokens a day ({round(100 * today / 100_000, 1)}%)" in page
    assert "<svg" in page and "Per person" not in page  # the staff navigation is staff's


def test_my_csv(history) -> None:
    response = as_user(history["alice"]).get("/usage/csv/", WINDOW)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert f"usage-{D2:%Y%m%d}-{D0:%Y%m%d}.csv" in response["Content-Disposition"]
    assert rows_of(response) == [
        ["day", "messages", "replies", "tokens_in", "tokens_out"],
        [D2.isoformat(), "2", "2", "15", "27"],
        [D1.isoformat(), "0", "0", "0", "0"],
        [D0.isoformat(), "1", "2", "100", "200"],
    ]


def test_staff_see_each_person_and_key(history) -> None:
    staff = as_user(history["staff"])
    people = staff.get("/usage/people/", WINDOW).content.decode()
    assert people.index(">alice<") < people.index(">bob<")
    keys = staff.get("/usage/keys/", WINDOW).content.decode()
    assert 'id="total-tokens-in">50<' in keys and "HYPERLINK" in keys and "bob" in keys
    detail = staff.get(f"/usage/people/{history['bob'].pk}/", WINDOW)
    assert detail.status_code == 200 and 'id="total-tokens-out">64<' in detail.content.decode()
    key_detail = staff.get(f"/usage/keys/{history['key'].pk}/", WINDOW).content.decode()
    assert 'id="total-tokens-out">60<' in key_detail


def test_a_breakdown_page_lists_the_biggest_and_says_how_many_more(history, monkeypatch) -> None:
    from webapp.usage import views

    monkeypatch.setattr(views, "PAGE_ROWS", 1)
    page = as_user(history["staff"]).get("/usage/people/", WINDOW).content.decode()
    assert ">alice<" in page and ">bob<" not in page
    assert "And 1 more with less usage" in page


def test_staff_csv_per_person_per_day(history) -> None:
    response = as_user(history["staff"]).get("/usage/people/csv/", WINDOW)
    alice, bob = history["alice"].pk, history["bob"].pk
    assert rows_of(response) == [
        ["day", "person id", "person", "messages", "replies", "tokens_in", "tokens_out"],
        [D2.isoformat(), str(alice), "alice", "2", "2", "15", "27"],
        [D0.isoformat(), str(alice), "alice", "1", "2", "100", "200"],
        [D1.isoformat(), str(bob), "bob", "1", "1", "50", "60"],
        [D0.isoformat(), str(bob), "bob", "1", "1", "3", "4"],
    ]
    one = as_user(history["staff"]).get(f"/usage/people/{bob}/csv/", WINDOW)
    assert rows_of(one)[1:] == [
        [D2.isoformat(), "0", "0", "0", "0"],
        [D1.isoformat(), "1", "1", "50", "60"],
        [D0.isoformat(), "1", "1", "3", "4"],
    ]


def test_a_key_name_never_becomes_a_spreadsheet_formula(history) -> None:
    rows = rows_of(as_user(history["staff"]).get("/usage/keys/csv/", WINDOW))
    assert rows[1][2].startswith("'=HYPERLINK"), rows


@pytest.mark.parametrize(
    "path",
    [
        "/usage/people/",
        "/usage/keys/",
        "/usage/people/csv/",
        "/usage/people/1/",
        "/usage/keys/1/csv/",
        "/usage/groups/",
    ],
)
def test_staff_pages_are_refused_to_everybody_else(history, path: str) -> None:
    assert as_user(history["alice"]).get(path).status_code == 403
    anonymous = Client().get(path)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_my_page_needs_a_login() -> None:
    assert Client().get("/usage/").status_code == 302
    assert Client().get("/usage/csv/").status_code == 302


def test_unknown_ids_and_breakdowns_are_404(history) -> None:
    staff = as_user(history["staff"])
    assert staff.get("/usage/people/999999/").status_code == 404
    assert staff.get("/usage/keys/999999/csv/").status_code == 404
    assert staff.get("/usage/teams/").status_code == 404
    assert staff.get("/usage/people/abc/").status_code == 404


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "2026-13-01"}, "Enter a valid date"),
        ({"to": "yesterday"}, "Enter a valid date"),
        ({"from": "<script>alert(1)</script>"}, "Enter a valid date"),
        ({"from": D0.isoformat(), "to": D2.isoformat()}, "ends before it starts"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "At most 366 days"),
        ({"from": "0001-01-01"}, "At most 366 days"),
    ],
)
def test_a_bad_window_is_400_and_says_why(history, query: dict, message: str) -> None:
    alice, staff = as_user(history["alice"]), as_user(history["staff"])
    for client, path in (
        (alice, "/usage/"),
        (staff, "/usage/people/"),
        (staff, f"/usage/keys/{history['key'].pk}/"),
    ):
        response = client.get(path, query)
        assert response.status_code == 400 and message in response.content.decode(), path
        assert "<script>alert" not in response.content.decode()
    for client, path in ((alice, "/usage/csv/"), (staff, "/usage/keys/csv/")):
        response = client.get(path, query)
        assert response.status_code == 400 and message in response.content.decode()
        assert response["Content-Type"].startswith("text/plain")


def test_a_year_is_allowed_and_the_default_is_the_last_30_days(history) -> None:
    alice = as_user(history["alice"])
    assert alice.get("/usage/", {"from": (D0 - dt.timedelta(days=365)).isoformat()}).status_code == 200
    page = alice.get("/usage/").content.decode()
    assert f"{D0 - dt.timedelta(days=29):%Y-%m-%d} to {D0:%Y-%m-%d}" in page
    assert 'id="total-tokens-in">115<' in page  # 40 days ago is outside


def test_pages_cost_the_same_queries_whatever_the_history(history, django_assert_max_num_queries) -> None:
    staff = as_user(history["staff"])
    for _ in range(5):
        exchange(Conversation.objects.create(owner=history["alice"]), D1, 1, 1)
    with django_assert_max_num_queries(8):
        staff.get("/usage/people/", WINDOW)
    with django_assert_max_num_queries(8):
        staff.get("/usage/people/csv/", WINDOW)


def test_administrators_see_each_group_with_everything_its_members_used(history) -> None:
    from django.contrib.auth.models import Group

    team, solo = Group.objects.create(name="team"), Group.objects.create(name="alice alone")
    history["alice"].groups.add(team, solo)
    history["bob"].groups.add(team)
    admin = as_user(history["staff"])
    listed = admin.get("/usage/groups/", WINDOW).content.decode()
    assert listed.index(">team<") < listed.index(">alice alone<")
    team_page = admin.get(f"/usage/groups/{team.pk}/", WINDOW).content.decode()
    assert 'id="total-tokens-in">168<' in team_page and 'id="total-tokens-out">291<' in team_page
    solo_page = admin.get(f"/usage/groups/{solo.pk}/", WINDOW).content.decode()
    assert 'id="total-tokens-in">115<' in solo_page and 'id="total-tokens-out">227<' in solo_page
    assert admin.get("/usage/groups/999999/", WINDOW).status_code == 404
    moderator = get_user_model().objects.create_user(username="mod", password="x" * 12, is_staff=True)
    assert as_user(moderator).get("/usage/groups/", WINDOW).status_code == 403
