"""Category policies: what a hook's verdict in a category leads to, by its score.

Staff set one policy per category (action and threshold; stored by the web
app, passed here as a plain mapping). For a verdict naming categories:
- score >= a category's threshold: the verdict takes that policy's action
  (the most severe, if several of its categories reach theirs), even if the
  hook itself said `allow` (a classifier reports scores and lets policy decide);
- below every threshold: a verdict that was not `allow` becomes at most
  `flag` (kept for review, not enforced), and never more than the policy's action;
- `redact` needs spans to replace: on the input (stored as typed) it becomes
  `flag`; on a stream or output verdict with no spans it becomes `block`,
  since the text cannot be shown and cannot be cut;
- categories with no policy, failed hooks and hooks that set
  `policy_exempt` (the rules hook: each rule carries its own action) are left as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from inference.moderation.base import Action, Stage, Verdict, most_severe

# category -> (action, threshold in 0..1)
Policies = Mapping[str, tuple[Action, float]]


def apply_policy(verdict: Verdict, policies: Policies, stage: Stage) -> Verdict:
    """`verdict` with its action set by the policies of its categories (see the module doc)."""
    if verdict.error or not verdict.categories:
        return verdict
    relevant = [(category, *policies[category]) for category in verdict.categories if category in policies]
    if not relevant:
        return verdict
    reached = [
        (category, action, threshold)
        for category, action, threshold in relevant
        if verdict.score >= threshold
    ]
    if reached:
        action = most_severe(action for _, action, _ in reached)
        category, _, threshold = next(r for r in reached if r[1] is action)
        note = f"policy {category}: {action.value} at score >= {threshold:g}"
    elif verdict.action is Action.ALLOW:
        return verdict
    else:
        ceiling = most_severe(action for _, action, _ in relevant)
        action = Action.FLAG if ceiling.severity >= Action.FLAG.severity else Action.ALLOW
        note = "policy: below every threshold"
    if action is Action.REDACT and (stage is Stage.INPUT or not verdict.spans):
        action = Action.FLAG if stage is Stage.INPUT else Action.BLOCK
    if action is verdict.action:
        return verdict
    reason = f"{verdict.reason} ({note})" if verdict.reason else note
    return dataclasses.replace(verdict, action=action, reason=reason)
