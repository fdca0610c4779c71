"""The Mistral-7B-Instruct v1 prompt format: the one place it lives.

``encode_chat`` turns a conversation into prompt ids exactly as
``mistral_common``'s ``MistralTokenizer.v1().encode_chat_completion`` does::

    <s>[INST] {user} [/INST]{assistant}</s>[INST] {user} [/INST]

Each user turn is the SentencePiece encoding of ``f"[INST] {content} [/INST]"``,
each assistant turn is ``encode(content) + [EOS]``, BOS comes once at the start,
and a system prompt is folded into the first user message as
``system_prompt + "\\n\\n" + content``. Message text is always encoded as text, so
``</s>`` or ``<s>`` typed by a user never becomes a control id.
Each turn is encoded on its own, so its ids are remembered
(``inference.token_cache``): a conversation's earlier turns are encoded once,
not again for every reply's prompt.

``fit_chat`` drops whole oldest turns until the prompt plus the reply budget fits
the context. ``count_tokens`` counts plain text. Plain Python: the web process
imports this module, so it must not pull in torch, transformers or Django.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece

from inference.token_cache import TokenCache

BOS_ID: int = 1
EOS_ID: int = 2
VOCAB_SIZE: int = 32000

# The v1 SentencePiece model ships inside the mistral-common wheel, so it is found
# offline; the package is located, not imported (importing it costs ~60 ms).
_MODEL_PACKAGE = "mistral_common"
_MODEL_FILE = Path("data") / "tokenizer.model.v1"

_USER = "user"
_ASSISTANT = "assistant"


class ChatTemplateError(ValueError):
    """The conversation is malformed: bad role, order, type or empty reply."""


class ContextOverflow(ChatTemplateError):
    """Even the system prompt and the last user message leave no room for the reply."""

    def __init__(self, needed: int, limit: int, reserved: int = 0) -> None:
        # Keep the numbers as args so the exception survives pickling (Celery).
        super().__init__(needed, limit, reserved)
        self.needed = needed
        self.limit = limit
        self.reserved = reserved

    def __str__(self) -> str:
        detail = (
            f" ({self.needed - self.reserved} for the system prompt and the last message"
            f" + {self.reserved} reserved for the reply)"
            if self.reserved
            else ""
        )
        return (
            f"The message is too long: it needs {self.needed} tokens{detail}, "
            f"but the context limit is {self.limit} tokens."
        )


@dataclass(frozen=True)
class FittedPrompt:
    """Prompt ids that fit the context, and how many oldest turns were dropped."""

    ids: list[int]
    dropped_turns: int


def model_path() -> Path:
    """Path of the v1 SentencePiece model inside the installed mistral-common."""
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("mistral-common is not installed: its tokenizer.model.v1 is needed")
    for location in spec.submodule_search_locations:
        path = Path(location) / _MODEL_FILE
        if path.is_file():
            return path
    raise RuntimeError(f"{_MODEL_FILE} not found in the installed mistral-common")


@functools.cache
def sentencepiece_processor() -> sentencepiece.SentencePieceProcessor:
    """The shared v1 SentencePiece processor (loaded once; encode/decode are thread-safe)."""
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model_path()))
    # A different model file would silently produce ids the model reads as other tokens.
    got = (processor.vocab_size(), processor.bos_id(), processor.eos_id())
    if got != (VOCAB_SIZE, BOS_ID, EOS_ID):
        raise RuntimeError(f"unexpected tokenizer (vocab, bos, eos) = {got}")
    return processor


def count_tokens(text: str) -> int:
    """Number of tokens of plain ``text`` (no BOS, no template)."""
    return len(sentencepiece_processor().encode(text))


def _encode_uncached(text: str) -> list[int]:
    return sentencepiece_processor().encode(text)


# A conversation's turns are encoded again for each of its replies' prompts (and the
# API's requests carry their whole history each time): remembered here, an earlier
# turn costs a lookup.
token_cache = TokenCache(_encode_uncached)


def _encode(text: str) -> list[int]:
    return token_cache.encode(text)


def _user_ids(content: str, system_prompt: str | None) -> list[int]:
    if system_prompt:
        content = f"{system_prompt}\n\n{content}"
    return _encode(f"[INST] {content} [/INST]")


def _assistant_ids(content: str) -> list[int]:
    return [*_encode(content), EOS_ID]


def _validate(messages: Sequence[Mapping[str, str]], system_prompt: str | None, *, prompt: bool) -> None:
    """Raise ChatTemplateError unless messages alternate user/assistant from a user message.

    With ``prompt`` the last message must be a user message (something to answer).
    """
    if system_prompt is not None and not isinstance(system_prompt, str):
        raise ChatTemplateError(f"system_prompt must be a string or None, not {type(system_prompt).__name__}")
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise ChatTemplateError(f"messages must be a sequence of dicts, not {type(messages).__name__}")
    if not messages:
        raise ChatTemplateError("the conversation has no messages")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ChatTemplateError(f"message {index} must be a mapping, not {type(message).__name__}")
        role = message.get("role")
        expected = _USER if index % 2 == 0 else _ASSISTANT
        if role not in (_USER, _ASSISTANT):
            hint = " (pass a system prompt as system_prompt=)" if role == "system" else ""
            raise ChatTemplateError(
                f"message {index} has role {role!r}; expected 'user' or 'assistant'{hint}"
            )
        if role != expected:
            raise ChatTemplateError(
                f"message {index} has role {role!r} but {expected!r} was expected: "
                "messages must alternate user/assistant, starting with user"
            )
        content = message.get("content")
        if not isinstance(content, str):
            raise ChatTemplateError(f"message {index} content must be a string, not {type(content).__name__}")
        # mistral_common refuses an empty assistant message too; an empty reply
        # would otherwise put a bare EOS in the prompt.
        if role == _ASSISTANT and not content:
            raise ChatTemplateError(f"message {index} is an empty assistant message")
    if prompt and messages[-1]["role"] != _USER:
        raise ChatTemplateError("the last message must be a user message to build a prompt")


def encode_chat(messages: Sequence[Mapping[str, str]], system_prompt: str | None = None) -> list[int]:
    """Prompt ids for ``messages``, identical to mistral_common's v1 chat encoding.

    ``messages`` are ``{"role": "user"|"assistant", "content": str}`` dicts,
    alternating and starting with a user message. The last one is normally a user
    message (a prompt to answer); a last assistant message is allowed and ends the
    ids with EOS, which is how a whole stored conversation is counted (it matches
    mistral_common's finetuning mode). A falsy ``system_prompt`` is ignored.
    """
    _validate(messages, system_prompt, prompt=False)
    ids = [BOS_ID]
    for index, message in enumerate(messages):
        if index % 2 == 0:
            ids += _user_ids(message["content"], system_prompt if index == 0 else None)
        else:
            ids += _assistant_ids(message["content"])
    return ids


def fit_chat(
    messages: Sequence[Mapping[str, str]],
    system_prompt: str | None,
    *,
    max_tokens: int,
    context_limit: int,
) -> FittedPrompt:
    """Prompt ids with ``len(ids) + max_tokens <= context_limit``, dropping oldest turns.

    A turn is a user message and the assistant reply after it; whole turns are
    dropped, oldest first. The system prompt and the last user message are always
    kept; the system prompt is folded into whichever user message comes first after
    dropping, so ``ids == encode_chat(messages[2 * dropped_turns:], system_prompt)``.
    Raises ContextOverflow when even the system prompt and the last user message
    leave no room for ``max_tokens``.
    """
    _validate(messages, system_prompt, prompt=True)
    if max_tokens < 0 or context_limit <= 0:
        raise ValueError(f"need max_tokens >= 0 and context_limit > 0, got {max_tokens}, {context_limit}")
    budget = context_limit - max_tokens
    last_turn = len(messages) // 2  # messages[2 * k] is the user message of turn k

    # Each message is encoded at most once as plain text, newest first, and only
    # as far back as could possibly fit: long histories cost what is kept, not more.
    plain: dict[int, list[int]] = {}

    def plain_ids(index: int) -> list[int]:
        if index not in plain:
            content = messages[index]["content"]
            plain[index] = _user_ids(content, None) if index % 2 == 0 else _assistant_ids(content)
        return plain[index]

    # tails[k]: tokens of everything after turn k's user message when turn k comes first.
    tails = {last_turn: 0}
    first_turn = last_turn
    while first_turn > 0:
        step = len(plain_ids(2 * first_turn - 1)) + len(plain_ids(2 * first_turn))
        # Tails only grow going back, so once BOS + tail is over budget no older start fits.
        if 1 + tails[first_turn] + step > budget:
            break
        first_turn -= 1
        tails[first_turn] = tails[first_turn + 1] + step

    # The first kept user message carries the system prompt, which changes its
    # encoding (tokens can merge across the join), so it is encoded for real.
    needed = 0
    for turn in range(first_turn, last_turn + 1):
        first_ids = (
            _user_ids(messages[2 * turn]["content"], system_prompt) if system_prompt else plain_ids(2 * turn)
        )
        needed = 1 + len(first_ids) + tails[turn]
        if needed <= budget:
            ids = [BOS_ID, *first_ids]
            for index in range(2 * turn + 1, len(messages)):
                ids += plain_ids(index)
            return FittedPrompt(ids=ids, dropped_turns=turn)
    raise ContextOverflow(needed=needed + max_tokens, limit=context_limit, reserved=max_tokens)


def fit_raw(prompt: str, *, max_tokens: int, context_limit: int) -> FittedPrompt:
    """Prompt ids for text the caller formatted itself (the API's raw completions): BOS + its encoding.

    The text is encoded as text, like every message: ``</s>`` or ``[INST]`` in it
    never becomes a control id. A leading ``<s>`` is dropped, since BOS is added
    anyway. Nothing is cut to fit: too long raises ContextOverflow.
    """
    text = prompt.removeprefix("<s>")
    ids = [BOS_ID, *_encode(text)]
    if len(ids) + max_tokens > context_limit:
        raise ContextOverflow(needed=len(ids) + max_tokens, limit=context_limit, reserved=max_tokens)
    return FittedPrompt(ids=ids, dropped_turns=0)
