"""The policies page: every category's policy, set one at a time through `policy_update`."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tests.webapp.moderation.dashboard_support import fast_passwords  # noqa: F401
from webapp.moderation.models import AuditLogEntry, CategoryPolicy
from webapp.moderation.selectors import policy_mapping

pytestmark = pytest.mark.django_db


def test_lists_every_category_with_its_policy(staff) -> None:
    page = staff.get(reverse("moderation:policies")).content.decode()
    rows = re.findall(r'<tr id="policy-(\w+)">', page)
    assert len(rows) == 10 and "pii" in rows and rows[-1] == "profanity"
    pii = page[page.index('<tr id="policy-pii">') :].split("</tr>", 1)[0]
    action, threshold = policy_mapping()["pii"]
    assert f'<option value="{action}" selected>' in pii and f'value="{threshold:g}"' in pii


def test_profanity_has_its_row_seeded_to_flag_and_can_be_set_to_block(staff) -> None:
    page = staff.get(reverse("moderation:policies")).content.decode()
    row = page[page.index('<tr id="policy-profanity">') :].split("</tr>", 1)[0]
    assert '<option value="flag" selected>' in row and 'value="0.9"' in row
    response = staff.post(
        reverse("moderation:policies"), {"category": "profanity", "action": "block", "threshold": "0.95"}
    )
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Policy saved: profanity: block at 0.95."
    ]
    assert policy_mapping()["profanity"] == ("block", 0.95)


def test_setting_a_policy_reaches_the_mapping_workers_read_and_is_audited(staff, moderator) -> None:
    response = staff.post(
        reverse("moderation:policies"), {"category": "health", "action": "block", "threshold": "0.35"}
    )
    assert response["Location"] == reverse("moderation:policies")
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Policy saved: health: block at 0.35."]
    assert policy_mapping()["health"] == ("block", 0.35)
    assert AuditLogEntry.objects.get(moderator=moderator).action == "policy_update"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"threshold": "1.5"}, "less than or equal to 1.0"),
        ({"threshold": "-0.1"}, "greater than or equal to 0.0"),
        ({"threshold": "nan"}, "Enter a number"),
        ({"threshold": "inf"}, "Enter a number"),
        ({"threshold": ""}, "This field is required"),
        ({"action": "delete"}, "Select a valid choice"),
        ({"category": "spam"}, "Select a valid choice"),
    ],
)
def test_bad_values_are_refused_and_change_nothing(staff, fields, says) -> None:
    before = list(CategoryPolicy.objects.values_list("category", "action", "threshold"))
    fields = {"category": "health", "action": "block", "threshold": "0.5", **fields}
    response = staff.post(reverse("moderation:policies"), fields)
    assert response.status_code == 302
    assert says in " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert list(CategoryPolicy.objects.values_list("category", "action", "threshold")) == before
    assert not AuditLogEntry.objects.exists()
