"""A test double at the engine boundary: a batched engine that "generates" a chosen text and costs nothing.

The worker loads it when `INFERENCE_ENGINE=tests.support.scripted_engine.load_engine`.
`SCRIPTED_REPLIES` is a JSON object {trigger: reply}: the reply is the first
whose trigger appears in the prompt. Like a GPU engine, one scheduler thread
runs a step every `SCRIPTED_DELAY_S` seconds (plus `SCRIPTED_ROW_S` per live
row, to mimic attention over long contexts), sleeping without the GIL as a
CUDA step does, and each step gives every live row its next id, handed over
once per step (`inference.steps`). The steps keep a cadence: a step ends
one step's time after the last one ended, or at once if the host took longer
than that to come back for it (it ran meanwhile, one step ahead, as a GPU
runs ahead of its host), so the host's own work between steps does not slow
the engine below one step every `SCRIPTED_DELAY_S`. Everything after the engine (decoding,
the moderation gate, coalescing, publishing, storage) is the real code.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from inference.chat_template import sentencepiece_processor
from inference.engine import EngineLoad
from inference.loading import ModelInfo
from inference.params import SamplingParams
from inference.steps import Request, StepOutput, StepSink, check_prompt, iterate

VOCAB = 32000


class ScriptedEngine:
    def __init__(
        self,
        replies: dict[str, str],
        delay_s: float,
        max_batch: int,
        row_s: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.replies = replies
        self._clock = clock
        self._sleep = sleep
        self.delay_s = delay_s
        self.row_s = row_s
        self.max_batch = max_batch
        self.info = ModelInfo(
            name="scripted", device="cpu", dtype="float32", context_length=32768, parameters=0
        )
        self._scripts: dict[Request, list[int]] = {}
        self._waiting: deque[Request] = deque()
        self._batch: list[Request] = []
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    def script(self, prompt_ids: Sequence[int]) -> list[int]:
        """The ids this engine answers `prompt_ids` with (before `max_tokens`)."""
        prompt = sentencepiece_processor().decode(list(prompt_ids))
        reply = next(
            (text for trigger, text in self.replies.items() if trigger in prompt), "No script for that."
        )
        return sentencepiece_processor().encode(reply)

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        score_ids: Sequence[int] = (),
        sink: StepSink | None = None,
        tag: Any = None,
    ) -> Request:
        prompt = check_prompt(prompt_ids, vocab=VOCAB, context_length=self.info.context_length)
        script = self.script(prompt)[: params.max_tokens]
        request = Request(prompt=prompt, params=params, budget=len(script), sink=sink, tag=tag)
        with self._wakeup:
            self._scripts[request] = script
            self._waiting.append(request)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="scripted-scheduler", daemon=True)
                self._thread.start()
            self._wakeup.notify()
        return request

    def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[int]:
        return iterate(self.submit(prompt_ids, params), should_stop)

    def load(self) -> EngineLoad:
        return EngineLoad(active=len(self._batch), waiting=len(self._waiting), max_batch=self.max_batch)

    def _run(self) -> None:
        ended = self._clock()  # when the last step ended
        while True:
            out = StepOutput()
            with self._wakeup:
                if not self._waiting and not self._batch:
                    while not self._waiting and not self._batch:
                        self._wakeup.wait()
                    ended = self._clock()  # idle: the first step starts now
                while self._waiting and len(self._batch) < self.max_batch:
                    self._batch.append(self._waiting.popleft())
                rows = len(self._batch)
            # A deadline, not a duration: the host's work since the last step ran alongside this one.
            ended = max(ended + self.delay_s + self.row_s * rows, self._clock())
            self._sleep(max(0.0, ended - self._clock()))
            for request in self._batch:
                script = self._scripts[request]
                if request.cancelled.is_set() or request.generated >= len(script):
                    out.end(request)
                    continue
                out.add(request, script[request.generated])
                request.generated += 1
                if request.generated == len(script):
                    out.end(request)
            with self._wakeup:
                self._batch = [r for r in self._batch if not r.ended]
                for request in list(self._scripts):
                    if request.ended:
                        del self._scripts[request]
            out.deliver()


def load_engine(*, max_batch: int = 32, **_: object) -> ScriptedEngine:
    return ScriptedEngine(
        json.loads(os.environ.get("SCRIPTED_REPLIES", "{}")),
        float(os.environ.get("SCRIPTED_DELAY_S", "0.005")),
        max_batch,
        float(os.environ.get("SCRIPTED_ROW_S", "0")),
    )
