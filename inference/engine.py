"""The engine: one model, and every live reply decoded together on it (continuous batching).

Callers in many threads call `Engine.generate` (a stream of token ids) or
`Engine.submit` with a sink (every step's ids for all their requests at
once: `inference.steps`). One scheduler thread owns the model and the
batch. Between two decode steps it admits the requests that arrived (their
prompts are prefilled together, left-padded, and their caches joined to the
batch's) and drops the ones that finished or were cancelled, freeing their
cache. Every step decodes one token for every reply in the batch, each
sampled with its own parameters and seed (`inference.sampling`).

Only the scheduler thread touches tensors; results reach callers once per
step, through a sink or one queue per request, so no caller can starve
another (the trap of transformers #42943). No Django, no Redis: plain
Python and torch.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel

from inference.kv_cache import BatchCache
from inference.loading import ModelInfo, check_vocab, load_model
from inference.params import SamplingParams
from inference.sampling import RowParams, check_params, new_generator, sample_batch
from inference.steps import (
    CallerSide,
    Request,
    StepOutput,
    StepSink,
    check_prompt,
    check_score_ids,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineLoad:
    """What the worker's heartbeat reports (the cache fields stay at their defaults for an engine without one)."""

    active: int  # replies in the batch now
    waiting: int  # submitted, not yet admitted (with a paged cache: also those waiting for blocks)
    max_batch: int
    blocks_used: int = 0  # paged KV cache blocks held by a request
    blocks_total: int = 0
    block_size: int = 0  # tokens per block
    prefix_hit_rate: float = 0.0  # share of prompt tokens found in the prefix cache since start
    preemptions: int = 0  # requests that gave their blocks back to be recomputed, since start


class Engine(CallerSide):
    """One loaded causal LM and the scheduler that batches every live reply on it."""

    def __init__(self, model: PreTrainedModel, *, name: str, max_batch: int = 32) -> None:
        check_vocab(model.config.vocab_size, name)
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.model = model.eval()
        self.info = ModelInfo.of(model, name)
        self.device = next(model.parameters()).device
        self.max_batch = max_batch
        eos = model.config.eos_token_id
        self.eos_ids: frozenset[int] = frozenset([eos] if isinstance(eos, int) else (eos or []))
        self._waiting: deque[Request] = deque()
        self._wakeup = threading.Condition()
        self._batch: _Batch | None = None
        self._thread: threading.Thread | None = None

    # --- the callers' side -----------------------------------------------------------

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        score_ids: Sequence[int] = (),
        sink: StepSink | None = None,
        tag: Any = None,
    ) -> Request:
        """Queue a request for the next step.

        Its ids go to `sink`, one call per step for all of that sink's
        requests (`inference.steps.StepRow`, carrying `tag`), or without a
        sink to `request.tokens`. With `score_ids`, the first step also
        records their log-probabilities in `request.first_logprobs` (before
        the first id is delivered).
        """
        check_params(params)
        vocab = self.model.config.vocab_size
        prompt = check_prompt(prompt_ids, vocab=vocab, context_length=self.info.context_length)
        scored = check_score_ids(score_ids, vocab=vocab)
        request = Request(
            prompt=prompt,
            params=params,
            budget=min(params.max_tokens, self.info.context_length - len(prompt)),
            generator=new_generator(params, self.device),
            sink=sink,
            tag=tag,
            score_ids=scored,
        )
        with self._wakeup:
            self._waiting.append(request)
            self._ensure_scheduler()
            self._wakeup.notify()
        return request

    def load(self) -> EngineLoad:
        batch = self._batch
        return EngineLoad(
            active=len(batch.requests) if batch else 0, waiting=len(self._waiting), max_batch=self.max_batch
        )

    # --- the scheduler -----------------------------------------------------------------

    def _ensure_scheduler(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="engine-scheduler", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        out = StepOutput()
        while True:
            with self._wakeup:
                while not self._waiting and self._batch is None:
                    self._wakeup.wait()
                joining = self._take_joining(out)
            try:
                with torch.inference_mode():
                    if joining:
                        self._admit(joining, out)
                    if self._batch is not None:
                        self._step(out)
            except Exception as error:  # a failed step fails its replies, not the engine
                logger.exception("engine step failed")
                failed = [*joining, *(self._batch.requests if self._batch else [])]
                self._batch = None
                for request in failed:
                    out.end(request, error)
            out.deliver()

    def _take_joining(self, out: StepOutput) -> list[Request]:
        room = self.max_batch - (len(self._batch.requests) if self._batch else 0)
        joining: list[Request] = []
        while self._waiting and len(joining) < room:
            request = self._waiting.popleft()
            if request.cancelled.is_set() or request.budget == 0:
                out.end(request)
            else:
                joining.append(request)
        return joining

    def _admit(self, joining: list[Request], out: StepOutput) -> None:
        """Prefill the newcomers together and join them to the batch with their first token."""
        newcomers = _Batch.prefill(self, joining, out)
        self._batch = newcomers if self._batch is None else self._batch.join(newcomers)

    def _step(self, out: StepOutput) -> None:
        batch = self._batch
        assert batch is not None
        keep = [i for i, r in enumerate(batch.requests) if not r.cancelled.is_set() and not r.ended]
        for request in set(batch.requests) - {batch.requests[i] for i in keep}:
            out.end(request)
        if not keep:
            self._batch = None
            return
        if len(keep) < len(batch.requests):
            batch.select(keep)
        batch.decode(self, out)


class _Batch:
    """The replies decoding together: their KV cache, and one row of state per reply."""

    def __init__(
        self,
        requests: list[Request],
        cache: BatchCache,
        last_tokens: torch.Tensor,
        seen: torch.Tensor,
    ) -> None:
        self.requests = requests
        self.cache = cache
        self.last_tokens = last_tokens  # [batch]: the id each row feeds next
        self.seen = seen  # [batch, vocab] bool: ids in each prompt and reply, for the penalty
        self.rows = RowParams([r.params for r in requests], last_tokens.device)

    @classmethod
    def prefill(cls, engine: Engine, requests: list[Request], out: StepOutput) -> _Batch:
        device = engine.device
        longest = max(len(r.prompt) for r in requests)
        ids = torch.zeros(len(requests), longest, dtype=torch.long, device=device)
        mask = torch.zeros(len(requests), longest, dtype=torch.long, device=device)
        seen = torch.zeros(len(requests), engine.model.config.vocab_size, dtype=torch.bool, device=device)
        for row, request in enumerate(requests):
            prompt = torch.tensor(request.prompt, dtype=torch.long, device=device)
            ids[row, longest - len(prompt) :] = prompt  # left padding: every row ends at the same column
            mask[row, longest - len(prompt) :] = 1
            seen[row, prompt] = True
        cache = BatchCache.empty(engine.model.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = engine.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache.hf_cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache.mask = mask
        cache.lengths = mask.sum(-1)
        batch = cls(requests, cache, ids[:, -1], seen)
        _record_first_logprobs(requests, logits.logits[:, -1, :])
        batch._emit(engine, logits.logits[:, -1, :], out)
        return batch

    def join(self, other: _Batch) -> _Batch:
        self.cache.join(other.cache)
        self.requests = [*self.requests, *other.requests]
        self.last_tokens = torch.cat([self.last_tokens, other.last_tokens])
        self.seen = torch.cat([self.seen, other.seen])
        self.rows = RowParams([r.params for r in self.requests], self.last_tokens.device)
        return self

    def select(self, keep: list[int]) -> None:
        index = torch.tensor(keep, dtype=torch.long, device=self.last_tokens.device)
        self.cache.select(index)
        self.requests = [self.requests[i] for i in keep]
        self.last_tokens = self.last_tokens[index]
        self.seen = self.seen[index]
        self.rows = RowParams([r.params for r in self.requests], self.last_tokens.device)

    def decode(self, engine: Engine, out: StepOutput) -> None:
        mask, positions = self.cache.extend()
        logits = engine.model(
            input_ids=self.last_tokens[:, None],
            attention_mask=mask,
            position_ids=positions[:, None],
            past_key_values=self.cache.hf_cache,
            use_cache=True,
        )
        self._emit(engine, logits.logits[:, -1, :], out)

    def _emit(self, engine: Engine, logits: torch.Tensor, out: StepOutput) -> None:
        """Sample one id per row for its caller; EOS or the budget ends a row (dropped at the next step)."""
        chosen = sample_batch(logits, self.rows, [r.generator for r in self.requests], self.seen)
        self.last_tokens = chosen
        self.seen[torch.arange(len(chosen), device=chosen.device), chosen] = True
        for request, token in zip(self.requests, chosen.tolist(), strict=True):
            if token in engine.eos_ids and not request.params.ignore_eos:
                out.end(request)
                continue
            request.generated += 1
            out.add(request, token)
            if request.generated >= request.budget:
                out.end(request)


def _record_first_logprobs(requests: list[Request], logits: torch.Tensor) -> None:
    """For the requests that asked: the log-probabilities of their `score_ids` at this (first) step."""
    for row, request in enumerate(requests):
        if request.score_ids:
            logprobs = torch.log_softmax(logits[row].float(), dim=-1)
            index = torch.tensor(request.score_ids, dtype=torch.long, device=logits.device)
            request.first_logprobs = logprobs[index].tolist()


def load_engine(
    *,
    model_path: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    max_batch: int = 32,
    **_: object,  # the paged engine's options (KV cache, chunking): this engine has none
) -> Engine:
    """Build the tiny model (no ``model_path``) or load local weights; raise EngineError if unloadable."""
    model, name = load_model(model_path=model_path, device=device, dtype=dtype)
    return Engine(model, name=name, max_batch=max_batch)
