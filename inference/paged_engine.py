"""The paged engine: the worker's engine interface over a paged KV cache, a prefix cache and chunked prefill.

Callers in many threads `submit` (ids per step to a sink: `inference.steps`),
`generate` (an iterator) or ask for `first_logprobs`, as with
`inference.engine.Engine`, which it replaces. One scheduler thread owns the
device: each step it drops cancelled requests (their blocks go back at
once), asks the `Scheduler` for the step's rows (decodes, then prefill
chunks under `max_tokens_per_step`), has the `ModelRunner` compute them and
sample, and hands every row's new id over in one `StepOutput`.

Requests never fail for lack of cache: they wait, or the newest is
preempted and recomputed. One that could not fit even alone in the whole
cache is refused at submit. No Django, no Redis.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Sequence as Seq
from typing import Any

import torch
from transformers import PreTrainedModel

from inference.block_manager import BlockManager
from inference.device_sampling import SEED_LIMIT
from inference.engine import EngineLoad
from inference.loading import EngineError, ModelInfo, check_vocab, load_forward
from inference.mistral import MistralForward
from inference.model_runner import ModelRunner, StepModel
from inference.paged_kv import PagedKV, blocks_for_memory
from inference.params import SamplingParams
from inference.sampling import check_params
from inference.scheduler import ScheduledRow, Scheduler
from inference.sequence import Sequence
from inference.steps import (
    CallerSide,
    Request,
    StepOutput,
    StepSink,
    check_prompt,
    check_score_ids,
)

logger = logging.getLogger(__name__)

# The KV cache on the CPU when KV_CACHE_GB is not set: 256k tokens of the tiny model
# (allocating is zeroing, and it is paid at every worker start).
CPU_KV_CACHE_GB = 0.25


class PagedEngine(CallerSide):
    """One model over a paged KV cache, and the scheduler thread that steps every live request on it."""

    def __init__(
        self,
        model: StepModel,
        kv: Any,
        *,
        info: ModelInfo,
        vocab: int,
        eos_ids: frozenset[int],
        num_blocks: int,
        block_size: int,
        device: torch.device,
        max_batch: int = 32,
        max_tokens_per_step: int = 2048,
        prefix_cache: bool = True,
        cuda_graphs: bool = True,
    ) -> None:
        self.info = info
        self.vocab = vocab
        self.eos_ids = eos_ids
        self.max_batch = max_batch
        self.blocks = BlockManager(num_blocks, block_size, prefix_cache=prefix_cache)
        self.scheduler = Scheduler(self.blocks, max_batch=max_batch, max_tokens_per_step=max_tokens_per_step)
        self.runner = ModelRunner(
            model,
            kv,
            vocab=vocab,
            device=device,
            block_size=block_size,
            max_batch=max_batch,
            max_tokens_per_step=max_tokens_per_step,
            max_blocks_per_sequence=-(-info.context_length // block_size),
            cuda_graphs=cuda_graphs,
        )
        self.runner.capture_graphs()
        self._incoming: list[Request] = []
        self._arrivals = 0
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    # --- the callers' side -----------------------------------------------------------

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        score_ids: Seq[int] = (),
        sink: StepSink | None = None,
        tag: Any = None,
    ) -> Request:
        """Queue a request (see `Engine.submit`); ValueError for bad input or one the cache cannot hold."""
        check_params(params)
        prompt = check_prompt(prompt_ids, vocab=self.vocab, context_length=self.info.context_length)
        scored = check_score_ids(score_ids, vocab=self.vocab)
        budget = min(params.max_tokens, self.info.context_length - len(prompt))
        needed = self.blocks.blocks_for(len(prompt) + budget)
        if needed > self.blocks.num_blocks:
            raise ValueError(
                f"{len(prompt)} prompt tokens + {budget} to generate need {needed} cache blocks of "
                f"{self.blocks.block_size} tokens, but the whole KV cache holds {self.blocks.num_blocks} "
                "(raise KV_CACHE_GB, or ask for fewer tokens)"
            )
        request = Request(prompt=prompt, params=params, budget=budget, sink=sink, tag=tag, score_ids=scored)
        with self._wakeup:
            self._incoming.append(request)
            self._ensure_scheduler()
            self._wakeup.notify()
        return request

    def load(self) -> EngineLoad:
        scheduler = self.scheduler
        return EngineLoad(
            active=len(scheduler.running),
            waiting=len(scheduler.waiting) + len(self._incoming),
            max_batch=self.max_batch,
            blocks_used=self.blocks.used_blocks,
            blocks_total=self.blocks.num_blocks,
            block_size=self.blocks.block_size,
            prefix_hit_rate=round(self.blocks.hit_rate, 4),
            preemptions=scheduler.preemptions,
        )

    # --- the scheduler thread ------------------------------------------------------------

    def _ensure_scheduler(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="paged-engine", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        out = StepOutput()
        while True:
            with self._wakeup:
                while not self._incoming and not self.scheduler.has_work():
                    self._wakeup.wait()
                for request in self._incoming:
                    self._arrivals += 1
                    seed = (
                        request.params.seed
                        if request.params.seed is not None
                        else secrets.randbelow(SEED_LIMIT)
                    )
                    self.scheduler.add(Sequence.of(request, seed=seed, arrival=self._arrivals))
                self._incoming.clear()
            rows: list[ScheduledRow] = []
            try:
                self._drop_ended(out)
                rows = self.scheduler.schedule()
                if rows:
                    with torch.inference_mode():
                        self._step(rows, out)
            except Exception as error:  # a failed step fails its rows' requests, not the engine
                logger.exception("engine step failed")
                for row in rows:
                    self.scheduler.finish(row.sequence)
                    out.end(row.sequence.request, error)
            out.deliver()

    def _drop_ended(self, out: StepOutput) -> None:
        for sequence in [*self.scheduler.running, *self.scheduler.waiting]:
            request = sequence.request
            if request.cancelled.is_set() or request.budget == 0:
                self.scheduler.finish(sequence)  # its blocks are free before this step is planned
                out.end(request)

    def _step(self, rows: list[ScheduledRow], out: StepOutput) -> None:
        scoring = [
            i
            for i, row in enumerate(rows)
            if row.samples and row.sequence.request.score_ids and row.sequence.generated == 0
        ]
        result = self.runner.run(rows, want_logits=bool(scoring))
        self.scheduler.advance(rows)
        if result.logits is not None:
            for i in scoring:
                request = rows[i].sequence.request
                logprobs = torch.log_softmax(result.logits[i].float(), dim=-1)
                request.first_logprobs = logprobs[list(request.score_ids)].tolist()
        for row, token in zip(rows, result.ids, strict=True):
            if row.samples:
                self._emit(row.sequence, token, out)

    def _emit(self, sequence: Sequence, token: int, out: StepOutput) -> None:
        request = sequence.request
        if token in self.eos_ids and not request.params.ignore_eos:
            self.scheduler.finish(sequence)
            out.end(request)
            return
        sequence.token_ids.append(token)
        request.generated += 1
        out.add(request, token)
        if request.generated >= request.budget:
            self.scheduler.finish(sequence)
            out.end(request)


def load_engine(
    *,
    model_path: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    max_batch: int = 32,
    kv_cache_gb: float | None = None,
    kv_cache_fraction: float = 0.9,
    block_size: int = 16,
    max_tokens_per_step: int = 2048,
    prefix_cache: bool = True,
    cuda_graphs: bool = True,
) -> PagedEngine:
    """Our paged forward over the tiny model (no `model_path`) or local weights, with its KV cache.

    The cache takes `kv_cache_gb` when given, else `kv_cache_fraction` of the
    device memory free once the weights are loaded (CUDA) or CPU_KV_CACHE_GB;
    never more blocks than `max_batch` full contexts use. Raises EngineError
    when the model cannot load or the budget holds no block.
    """
    forward, name = load_forward(model_path=model_path, device=device, dtype=dtype)
    budget = cache_budget_gb(forward.device, kv_cache_gb, kv_cache_fraction)
    return paged_engine_for(
        forward,
        name=name,
        kv_cache_gb=budget,
        max_batch=max_batch,
        block_size=block_size,
        max_tokens_per_step=max_tokens_per_step,
        prefix_cache=prefix_cache,
        cuda_graphs=cuda_graphs,
    )


def paged_engine_for(
    model: MistralForward | PreTrainedModel,
    *,
    name: str,
    kv_cache_gb: float = CPU_KV_CACHE_GB,
    max_batch: int = 32,
    block_size: int = 16,
    max_tokens_per_step: int = 2048,
    prefix_cache: bool = True,
    cuda_graphs: bool = True,
) -> PagedEngine:
    """A paged engine over a loaded model (ours, or a transformers Mistral converted), with a cache of `kv_cache_gb`."""
    forward = model if isinstance(model, MistralForward) else MistralForward.from_hf(model)
    config = forward.config
    check_vocab(config.vocab_size, name)
    context = int(config.max_position_embeddings)
    try:
        num_blocks = blocks_for_memory(
            config, budget_bytes=int(kv_cache_gb * 2**30), block_size=block_size, dtype=forward.dtype
        )
    except ValueError as exc:
        raise EngineError(str(exc)) from exc
    num_blocks = min(num_blocks, max_batch * -(-context // block_size))
    kv = PagedKV.allocate(
        config, num_blocks=num_blocks, block_size=block_size, dtype=forward.dtype, device=forward.device
    )
    logger.info("KV cache: %d blocks of %d tokens (%.2f GB)", num_blocks, block_size, kv.nbytes() / 2**30)
    eos = config.eos_token_id
    return PagedEngine(
        forward,
        kv,
        info=ModelInfo(
            name=name,
            device=str(forward.device),
            dtype=str(forward.dtype).removeprefix("torch."),
            context_length=context,
            parameters=sum(p.numel() for p in forward.parameters()),
        ),
        vocab=int(config.vocab_size),
        eos_ids=frozenset([eos] if isinstance(eos, int) else (eos or [])),
        num_blocks=num_blocks,
        block_size=block_size,
        device=forward.device,
        max_batch=max_batch,
        max_tokens_per_step=max_tokens_per_step,
        prefix_cache=prefix_cache,
        cuda_graphs=cuda_graphs,
    )


def cache_budget_gb(device: torch.device, kv_cache_gb: float | None, fraction: float) -> float:
    """The KV cache's memory: as asked, else a fraction of what the device has free now."""
    if kv_cache_gb:
        return kv_cache_gb
    if device.type != "cuda":
        return CPU_KV_CACHE_GB
    if not 0 < fraction <= 1:
        raise EngineError(f"KV_CACHE_FRACTION must be in (0, 1], got {fraction}")
    torch.cuda.empty_cache()  # memory the allocator keeps reserved is not free to the driver
    free, _ = torch.cuda.mem_get_info(device)
    return fraction * free / 2**30
