"""A test double at the engine boundary: it "generates" a chosen text, token by token.

The worker loads it when `INFERENCE_ENGINE=tests.support.scripted_engine.load_engine`.
`SCRIPTED_REPLIES` is a JSON object {trigger: reply}: the reply is the first
whose trigger appears in the prompt. Everything after the engine (decoding,
the moderation gate, coalescing, publishing, storage) is the real code.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator

from inference.chat_template import sentencepiece_processor
from inference.engine import EngineLoad
from inference.loading import ModelInfo
from inference.params import SamplingParams


class ScriptedEngine:
    def __init__(self, replies: dict[str, str], delay_s: float, max_batch: int) -> None:
        self.replies = replies
        self.delay_s = delay_s
        self.max_batch = max_batch
        self.info = ModelInfo(
            name="scripted", device="cpu", dtype="float32", context_length=32768, parameters=0
        )

    def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[int]:
        prompt = sentencepiece_processor().decode(prompt_ids)
        reply = next(
            (text for trigger, text in self.replies.items() if trigger in prompt), "No script for that."
        )
        for token_id in sentencepiece_processor().encode(reply)[: params.max_tokens]:
            if should_stop():
                return
            time.sleep(self.delay_s)
            yield token_id

    def load(self) -> EngineLoad:
        return EngineLoad(active=0, waiting=0, max_batch=self.max_batch)


def load_engine(*, max_batch: int = 32, **_: object) -> ScriptedEngine:
    return ScriptedEngine(
        json.loads(os.environ.get("SCRIPTED_REPLIES", "{}")),
        float(os.environ.get("SCRIPTED_DELAY_S", "0.005")),
        max_batch,
    )
