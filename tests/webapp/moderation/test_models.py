"""The moderation records: append-only audit log, constraints, seeded policies, admin permissions."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.admin.sites import site
from django.db import IntegrityError, transaction
from django.test import RequestFactory

from inference.moderation.base import CATEGORIES, Action
from webapp.moderation.models import AppendOnlyError, AuditLogEntry, CategoryPolicy, Report, Sanction

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(moderator) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        moderator=moderator, action="confirm", target_type="event", target_id="1", detail={"to": "confirmed"}
    )


def test_audit_entry_cannot_be_changed(entry) -> None:
    entry.action = "dismiss"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        AuditLogEntry.objects.filter(pk=entry.pk).update(action="dismiss")
    assert AuditLogEntry.objects.get(pk=entry.pk).action == "confirm"


def test_audit_entry_cannot_be_deleted(entry) -> None:
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditLogEntry.objects.all().delete()
    assert AuditLogEntry.objects.filter(pk=entry.pk).exists()


def test_a_moderator_with_log_entries_cannot_be_deleted(entry, moderator) -> None:
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        moderator.delete()


def test_admin_shows_the_audit_log_read_only(entry, moderator) -> None:
    moderator.is_superuser = True
    request = RequestFactory().get("/admin/")
    request.user = moderator
    model_admin = site._registry[AuditLogEntry]
    assert model_admin.has_view_permission(request, entry)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)


def test_every_moderation_model_is_in_the_admin() -> None:
    from django.apps import apps

    models = apps.get_app_config("moderation").get_models()
    assert {m.__name__ for m in models} <= {m.__name__ for m in site._registry}


def test_policies_are_seeded_for_every_category() -> None:
    policies = {p.category: p for p in CategoryPolicy.objects.all()}
    assert set(policies) == set(CATEGORIES)
    for policy in policies.values():
        assert Action(policy.action) in Action
        assert 0.0 <= policy.threshold <= 1.0
    assert policies["pii"].action == "redact"
    assert (policies["profanity"].action, policies["profanity"].threshold) == ("flag", 0.9)


PROFANITY_MIGRATION = importlib.import_module("webapp.moderation.migrations.0003_profanity")


def test_the_profanity_migration_is_reversible_and_keeps_a_blocking_classifier_blocking(settings) -> None:
    from django.apps import apps

    seed = PROFANITY_MIGRATION.Migration.operations[-1]
    assert seed.reversible
    PROFANITY_MIGRATION.remove_profanity_policy(apps, None)
    assert not CategoryPolicy.objects.filter(category="profanity").exists()
    # A deployment that had set the classifier to block (its own action, before this policy) keeps blocking.
    settings.MODERATION_OFFENSIVE_ACTION, settings.MODERATION_OFFENSIVE_THRESHOLD = "block", 0.85
    PROFANITY_MIGRATION.seed_profanity_policy(apps, None)
    policy = CategoryPolicy.objects.get(category="profanity")
    assert (policy.action, policy.threshold) == ("block", 0.85)
    CategoryPolicy.objects.filter(category="profanity").update(action="allow", threshold=0.3)
    PROFANITY_MIGRATION.seed_profanity_policy(apps, None)  # again: a row staff changed is left alone
    assert list(CategoryPolicy.objects.filter(category="profanity").values_list("action", "threshold")) == [
        ("allow", 0.3)
    ]


def test_policy_threshold_outside_0_1_is_refused_by_the_database() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        CategoryPolicy.objects.filter(category="law").update(threshold=1.5)


def test_one_open_report_per_user_and_message(bob, reply) -> None:
    Report.objects.create(reporter=bob, message=reply, reason="harmful")
    with pytest.raises(IntegrityError), transaction.atomic():
        Report.objects.create(reporter=bob, message=reply, reason="other")
    Report.objects.update(status="dismissed")
    Report.objects.create(reporter=bob, message=reply, reason="other")  # a closed one does not count
    assert Report.objects.count() == 2


def test_a_suspension_needs_an_end(bob, moderator) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Sanction.objects.create(user=bob, kind="suspend", created_by=moderator)


@pytest.fixture
def admin_client_of(moderator):
    from django.test import Client

    moderator.is_superuser = True
    moderator.save()
    client = Client()
    client.force_login(moderator)
    return client


def test_a_policy_changed_in_the_admin_is_audited(admin_client_of, moderator) -> None:
    policy = CategoryPolicy.objects.get(category="law")
    response = admin_client_of.post(
        f"/admin/moderation/categorypolicy/{policy.pk}/change/", {"action": "block", "threshold": "0.4"}
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.action, policy.threshold, policy.updated_by) == ("block", 0.4, moderator)
    assert AuditLogEntry.objects.get().action == "policy_update"
    bad = admin_client_of.post(
        f"/admin/moderation/categorypolicy/{policy.pk}/change/", {"action": "block", "threshold": "2"}
    )
    assert bad.status_code == 200 and AuditLogEntry.objects.count() == 1  # the form refused it


def test_a_sanction_added_in_the_admin_is_audited_and_checked(admin_client_of, moderator, bob) -> None:
    response = admin_client_of.post(
        "/admin/moderation/sanction/add/", {"user": bob.pk, "kind": "ban", "reason": "spam"}
    )
    assert response.status_code == 302
    sanction = Sanction.objects.get()
    assert (sanction.user, sanction.kind, sanction.created_by) == (bob, "ban", moderator)
    assert AuditLogEntry.objects.get().action == "sanction_ban"
    # A suspension with no end, or of oneself, is refused by the same checks as the dashboard's.
    for data in (
        {"user": bob.pk, "kind": "suspend", "reason": ""},
        {"user": moderator.pk, "kind": "warn", "reason": ""},
    ):
        assert admin_client_of.post("/admin/moderation/sanction/add/", data).status_code == 200
    assert Sanction.objects.count() == 1
