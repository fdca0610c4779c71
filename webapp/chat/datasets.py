"""Datasets from the tree and the feedback: preference pairs (TRL's DPO format) and rated replies (KTO's).

A question with several versions of its reply is where preferences show:
the version rated better, or failing a rating, the one the person went on
from, is `chosen` over the other. Every reply rated 👍 or 👎 is also a
labelled example on its own. Only what a model should learn from counts, as
in the fine-tuning export: replies `complete` or `stopped` with text, never
blocked, hidden or failed ones. docs/exports.md describes both formats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from webapp.chat.exports import ExportTree, finetune_pairs
from webapp.chat.models import Conversation, Feedback, Message

RATING_SCORE = {Feedback.Rating.UP: 1, Feedback.Rating.DOWN: -1}


def learnable(reply: Message) -> bool:
    return reply.status in (Message.Status.COMPLETE, Message.Status.STOPPED) and bool(reply.content)


def prompt_turns(conversation: Conversation, path: Sequence[Message]) -> list[dict[str, str]]:
    """The prompt that a reply under `path[-1]` (a question) answers: system, earlier pairs, the question."""
    turns = [{"role": "system", "content": conversation.system_prompt}] if conversation.system_prompt else []
    for question, reply in finetune_pairs(path[:-1]):
        turns += [
            {"role": "user", "content": question.content},
            {"role": "assistant", "content": reply.content},
        ]
    return [*turns, {"role": "user", "content": path[-1].content}]


def preference_pairs(
    conversation: Conversation, messages: Sequence[Message], ratings: Mapping[Any, str]
) -> list[tuple[list[dict[str, str]], Message, Message]]:
    """(prompt, chosen, rejected) for every two versions of a reply that one is preferred to.

    Preferred: the better rating (👍 over none over 👎); between equal
    ratings, the version the conversation went on from over one it did not.
    """
    shown = ExportTree.of(conversation, messages)
    tree = shown.tree
    pairs = []
    for question_id, children in tree.children.items():
        question = shown.messages.get(question_id)
        if (
            question is None
            or question.role != Message.Role.USER
            or question.status == Message.Status.BLOCKED
        ):
            continue
        replies = [shown.messages[key] for key in children if learnable(shown.messages[key])]
        if len(replies) < 2:
            continue

        def preference(reply: Message) -> tuple[int, int]:
            return RATING_SCORE.get(ratings.get(reply.id), 0), int(bool(tree.children[reply.id]))

        prompt = prompt_turns(conversation, [shown.messages[key] for key in tree.path_to(question_id)])
        for chosen in replies:
            for rejected in replies:
                if preference(chosen) > preference(rejected):
                    pairs.append((prompt, chosen, rejected))
    return pairs


def rated_replies(
    conversation: Conversation, messages: Sequence[Message], feedback: Mapping[Any, Feedback]
) -> list[tuple[list[dict[str, str]], Message, Feedback]]:
    """(prompt, reply, feedback) for every reply its owner rated, oldest first."""
    shown = ExportTree.of(conversation, messages)
    rated = []
    for key, reply in shown.messages.items():
        parent_id = shown.tree.parent[key]
        if key not in feedback or not learnable(reply) or parent_id is None:
            continue
        path = [shown.messages[step] for step in shown.tree.path_to(parent_id)]
        if path[-1].role == Message.Role.USER:
            rated.append((prompt_turns(conversation, path), reply, feedback[key]))
    return rated


def dpo_line(prompt: list[dict[str, str]], chosen: Message, rejected: Message) -> dict[str, Any]:
    """TRL's conversational preference format: the prompt's turns, and one assistant turn each side."""
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen.content}],
        "rejected": [{"role": "assistant", "content": rejected.content}],
    }


def rated_line(prompt: list[dict[str, str]], reply: Message, feedback: Feedback) -> dict[str, Any]:
    """TRL's unpaired preference (KTO) format, with the rating's reasons and comment beside it."""
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": reply.content}],
        "label": feedback.rating == Feedback.Rating.UP,
        "reasons": list(feedback.reasons),
        "comment": feedback.comment,
    }
