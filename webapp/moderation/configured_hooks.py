"""The settings-driven hooks: the plain ones of `inference.moderation`, configured from settings.

`MODERATION_HOOKS` names classes that take no arguments (like middleware);
these read their options from `django.conf.settings` when the worker builds
the chain for a reply.
"""

from __future__ import annotations

from django.conf import settings

from inference.moderation import external, judge, offensive
from inference.moderation.base import Action


class OffensiveLanguageHook(offensive.OffensiveLanguageHook):
    def __init__(self) -> None:
        super().__init__(
            threshold=settings.MODERATION_OFFENSIVE_THRESHOLD,
            action=Action(settings.MODERATION_OFFENSIVE_ACTION),
        )


class ExternalModerationHook(external.ExternalModerationHook):
    def __init__(self) -> None:
        super().__init__(
            url=settings.MODERATION_EXTERNAL_URL,
            api_key=settings.MODERATION_EXTERNAL_API_KEY,
            schema=settings.MODERATION_EXTERNAL_SCHEMA,
            model=settings.MODERATION_EXTERNAL_MODEL,
            timeout_s=settings.MODERATION_EXTERNAL_TIMEOUT_MS / 1000.0,
            threshold=settings.MODERATION_EXTERNAL_THRESHOLD,
            action=Action(settings.MODERATION_EXTERNAL_ACTION),
        )


class SelfReflectionJudge(judge.SelfReflectionJudge):
    """On by default with real weights only (`MODERATION_JUDGE=auto`); the engine is the worker's."""

    def __init__(self) -> None:
        super().__init__(
            enabled=judge.judge_enabled(settings.MODERATION_JUDGE, settings.MODEL_PATH),
            threshold=settings.MODERATION_JUDGE_THRESHOLD,
            action=Action(settings.MODERATION_JUDGE_ACTION),
            timeout_s=settings.MODERATION_JUDGE_TIMEOUT_MS / 1000.0,
        )
