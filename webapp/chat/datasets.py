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

from django.apps import apps
from django.db import models

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


def dataset_lines(
    conversation: Conversation,
    messages: Sequence[Message],
    dataset_format: str,
    *,
    moderation: ModerationAnnotations | None = None,
) -> list[dict[str, Any]]:
    """The `dpo` or `rated` lines of one conversation (all its messages, as exports.messages_for_export).

    Only the owner's ratings count. With `moderation`, each line gets the
    moderation events of each side (`chosen`/`rejected`, or `completion`).
    """
    feedback = {
        rating.message_id: rating
        for rating in Feedback.objects.filter(
            message__conversation=conversation, user_id=conversation.owner_id
        )
    }
    if dataset_format == "dpo":
        ratings = {key: rating.rating for key, rating in feedback.items()}
        rows = [
            (dpo_line(prompt, chosen, rejected), {"chosen": chosen, "rejected": rejected})
            for prompt, chosen, rejected in preference_pairs(conversation, messages, ratings)
        ]
    elif dataset_format == "rated":
        rows = [
            (rated_line(prompt, reply, rating), {"completion": reply})
            for prompt, reply, rating in rated_replies(conversation, messages, feedback)
        ]
    else:
        raise ValueError(f"unknown dataset format {dataset_format!r}")
    if moderation is not None and rows:
        by_message = moderation.for_messages([message for _, sides in rows for message in sides.values()])
        for line, sides in rows:
            line["moderation"] = {
                side: by_message.get(str(message.id), []) for side, message in sides.items()
            }
    return [line for line, _ in rows]


class ModerationAnnotations:
    """Moderation events of messages, read from the moderation app's ModerationEvent model."""

    def __init__(self, model: type[models.Model], link: models.ForeignKey) -> None:
        self.model = model
        self.link = link

    def for_messages(self, messages: list[Message]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        fields = [f.attname for f in self.model._meta.concrete_fields if f is not self.link]
        rows = self.model._default_manager.filter(**{f"{self.link.name}__in": messages}).values(
            self.link.attname, *fields
        )
        for row in rows:
            found.setdefault(str(row.pop(self.link.attname)), []).append(row)
        return found


def moderation_annotations() -> ModerationAnnotations:
    """The moderation app's events as export annotations; LookupError (with the reason) if it has none."""
    try:
        model = apps.get_model("moderation", "ModerationEvent")
    except LookupError:
        raise LookupError(
            "no installed moderation app has a ModerationEvent model, so --with-moderation has nothing "
            "to add. Run without it."
        ) from None
    link = next(
        (
            f
            for f in model._meta.concrete_fields
            if isinstance(f, models.ForeignKey) and f.related_model is Message
        ),
        None,
    )
    if link is None:
        raise LookupError("ModerationEvent has no link to a message.")
    return ModerationAnnotations(model, link)
