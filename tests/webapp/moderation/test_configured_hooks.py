"""The settings-driven hooks: each reads its options, the default chain, the judge off with the tiny model."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model

from inference.moderation.base import Action, ModerationContext
from inference.moderation.chain import ModerationChain
from webapp.moderation import services
from webapp.moderation.configured_hooks import (
    ExternalModerationHook,
    OffensiveLanguageHook,
    SelfReflectionJudge,
)
from webapp.moderation.selectors import policy_mapping


def test_the_default_chain_has_the_classifier_and_the_judge() -> None:
    chain = ModerationChain.from_paths(
        django_settings.MODERATION_HOOKS[1:], budget_ms=50
    )  # [0] needs the database
    names = [hook.name for hook, _ in chain.hooks]
    assert names == ["pii", "offensive", "judge"]
    # The judge keeps its own, longer budget; the others get the chain's.
    assert [policy.budget_ms for _, policy in chain.hooks] == [50, 50, 5250.0]
    assert "ExternalModerationHook" not in " ".join(django_settings.MODERATION_HOOKS)  # off by default


def test_the_judge_is_off_with_the_tiny_model_and_follows_the_setting(settings) -> None:
    settings.MODEL_PATH = ""
    assert SelfReflectionJudge().enabled is False
    settings.MODEL_PATH = "/models/Mistral-7B-Instruct-v0.2"
    assert SelfReflectionJudge().enabled is True
    settings.MODERATION_JUDGE = "off"
    assert SelfReflectionJudge().enabled is False
    settings.MODERATION_JUDGE, settings.MODEL_PATH = "on", ""
    settings.MODERATION_JUDGE_THRESHOLD, settings.MODERATION_JUDGE_ACTION = 0.7, "block"
    hook = SelfReflectionJudge()
    assert (hook.enabled, hook.threshold, hook.action) == (True, 0.7, Action.BLOCK)


def test_the_offensive_hook_reads_its_settings(settings) -> None:
    settings.MODERATION_OFFENSIVE_THRESHOLD, settings.MODERATION_OFFENSIVE_ACTION = 0.8, "block"
    hook = OffensiveLanguageHook()
    assert (hook.threshold, hook.action) == (0.8, Action.BLOCK)
    settings.MODERATION_OFFENSIVE_ACTION = "nonsense"
    with pytest.raises(ValueError):
        OffensiveLanguageHook()


def test_the_external_hook_reads_its_settings_and_needs_a_url(settings) -> None:
    with pytest.raises(ValueError, match="URL"):
        ExternalModerationHook()  # listed without a URL: refused, not silently off
    settings.MODERATION_EXTERNAL_URL = "https://moderation.example/v1/chat/moderations"
    settings.MODERATION_EXTERNAL_API_KEY = "key"
    settings.MODERATION_EXTERNAL_SCHEMA = "mistral-chat"
    settings.MODERATION_EXTERNAL_TIMEOUT_MS = 1500
    hook = ExternalModerationHook()
    assert (hook.url, hook.api_key, hook.schema, hook.model) == (
        "https://moderation.example/v1/chat/moderations",
        "key",
        "mistral-chat",
        "mistral-moderation-latest",
    )
    assert (hook.timeout_s, hook.budget_ms, hook.action) == (1.5, 1750.0, Action.BLOCK)


def _offensive_chain() -> ModerationChain:
    """The classifier as the worker builds it for a reply: with the policies stored in the database."""
    return ModerationChain.from_paths(
        ["webapp.moderation.configured_hooks.OffensiveLanguageHook"],
        budget_ms=2000,
        policies=policy_mapping(),
    )


@pytest.mark.django_db
def test_the_profanity_policy_decides_what_an_insult_leads_to() -> None:
    ctx = ModerationContext("c", "m", "u")
    [seeded] = _offensive_chain().check_output(ctx, "you are an idiot")
    assert (seeded.action, seeded.categories, seeded.hook) == (Action.FLAG, ("profanity",), "offensive")
    moderator = get_user_model().objects.create_user(username="mod", is_staff=True)
    services.policy_update(moderator=moderator, category="profanity", action="block", threshold=0.9)
    [blocked] = _offensive_chain().check_output(ctx, "you are an idiot")
    assert (blocked.action, blocked.categories) == (Action.BLOCK, ("profanity",))
    assert "policy profanity: block at score >= 0.9" in blocked.reason
    # Hate's policy (block at 0.8, seeded) is hate's: an insult that names a group follows it, not profanity's.
    services.policy_update(moderator=moderator, category="profanity", action="flag", threshold=0.9)
    [hate] = _offensive_chain().check_output(ctx, "all muslims are fucking idiots")
    assert (hate.action, hate.categories) == (Action.BLOCK, ("hate_and_discrimination",))
