"""Hooks that need the database: the rules staff keep in it."""

from __future__ import annotations

from inference.moderation.base import Action
from inference.moderation.rules import Rule as RuleSpec
from inference.moderation.rules import RulesHook
from webapp.moderation.models import Rule


class DatabaseRulesHook(RulesHook):
    """The rules hook over the enabled rules in the database.

    The worker builds its chain for each reply, so a rule staff add or change
    reaches a running worker at the next reply, with no restart.
    """

    name = "rules"

    def __init__(self) -> None:
        rules = Rule.objects.filter(enabled=True).values_list("category", "action", "kind", "pattern")
        super().__init__(
            [RuleSpec(category, Action(action), kind, pattern) for category, action, kind, pattern in rules]
        )
