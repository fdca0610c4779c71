"""Celery tasks of the inference worker: the only module in `inference/` that touches Django.

Start a worker with `celery -A webapp worker -Q inference -P threads -c MAX_BATCH
-I inference.tasks`. The model is loaded once per process, in the background
as the worker starts, and shared by every thread. Each job thread claims its
reply, opens it (input moderation, the prompt) and hands it to the process's
one reply loop (`inference.reply_loop`), which streams every reply at the
engine's step; the thread then stores the outcome.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django import db
from django.conf import settings
from django.utils.module_loading import import_string

from inference.engine import Engine
from inference.moderation import judge
from inference.moderation.base import ModerationContext
from inference.moderation.chain import ModerationChain
from inference.paged_engine import PagedEngine
from inference.reply_loop import ReplyLoop
from inference.streaming import ReplyModeration, ReplyOutcome, ReplyStream, StreamSettings
from inference.tiny import TINY_MODEL_NAME
from webapp import workers
from webapp.chat import live, reply_jobs, sweeper
from webapp.moderation.selectors import enabled_rules, policy_mapping

logger = logging.getLogger(__name__)

WORKER_NAME = f"{socket.gethostname()}:{threading.get_native_id()}"


class _EngineHolder:
    """The process's one engine: loaded once, awaited by every job that arrives meanwhile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = threading.Event()
        self.engine: Engine | PagedEngine | None = None
        self.loop: ReplyLoop | None = None
        self.error: str = ""

    def load(self) -> None:
        with self._lock:
            if self._loaded.is_set():
                return
            try:
                self.engine = import_string(settings.INFERENCE_ENGINE)(
                    model_path=settings.MODEL_PATH or None,
                    device=settings.MODEL_DEVICE or None,
                    dtype=settings.MODEL_DTYPE or None,
                    max_batch=settings.MAX_BATCH,
                    **engine_options(),
                )
                self.loop = ReplyLoop(self.engine, publish=live.publish_step, stop_poll=live.stops_requested)
                logger.info("model loaded: %s", self.engine.info)
            except Exception as error:
                self.error = str(error)
                logger.exception("the model failed to load")
            finally:
                self._loaded.set()

    def get(self) -> tuple[Engine | PagedEngine, ReplyLoop]:
        if not self._loaded.is_set():
            self.load()
        if self.engine is None or self.loop is None:
            raise RuntimeError(f"The model could not be loaded: {self.error}")
        return self.engine, self.loop

    def status(self) -> dict[str, object]:
        """The heartbeat: model, device, dtype, batch in use, queue length, loading/ready/failed."""
        status: dict[str, object] = {
            "max_batch": settings.MAX_BATCH,
            "queue_length": workers.queue_length(),
            # What the sweeper checks: a streaming reply nobody lists has lost its worker.
            "replies": running.ids(),
        }
        if not self._loaded.is_set():
            return {**status, "state": "loading", "model": settings.MODEL_PATH or TINY_MODEL_NAME}
        if self.engine is None:
            return {**status, "state": "failed", "model": settings.MODEL_PATH, "error": self.error}
        info, load = self.engine.info, self.engine.load()
        return {
            **status,
            "state": "ready",
            "model": info.name,
            "device": info.device,
            "dtype": info.dtype,
            "parameters": info.parameters,
            "active": load.active,
            "waiting": load.waiting,
            # The paged KV cache (zeros for an engine without one).
            "kv_blocks_used": load.blocks_used,
            "kv_blocks_total": load.blocks_total,
            "kv_block_size": load.block_size,
            "prefix_hit_rate": load.prefix_hit_rate,
            "preemptions": load.preemptions,
        }


def engine_options() -> dict[str, object]:
    """The paged engine's settings, passed to whichever `INFERENCE_ENGINE` loads (others ignore them)."""
    return {
        "kv_cache_gb": settings.KV_CACHE_GB or None,
        "kv_cache_fraction": settings.KV_CACHE_FRACTION,
        "block_size": settings.KV_BLOCK_SIZE,
        "max_tokens_per_step": settings.MAX_TOKENS_PER_STEP,
        "prefix_cache": settings.PREFIX_CACHE,
        "cuda_graphs": settings.CUDA_GRAPHS,
    }


class _Running:
    """The replies this process is writing, for its heartbeat."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] = set()

    def add(self, message_id: str) -> None:
        with self._lock:
            self._ids.add(message_id)

    def discard(self, message_id: str) -> None:
        with self._lock:
            self._ids.discard(message_id)

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._ids)


holder = _EngineHolder()
judge.set_engine_provider(lambda: holder.engine)  # the judge scores through this process's engine
running = _Running()
_stopping = threading.Event()


@shared_task(name="inference.generate_reply", ignore_result=True)
def generate_reply(message_id: str) -> None:
    """Write one queued reply: claim it, stream it, store it.

    Idempotent: a job delivered twice (acks_late redelivers one whose worker
    died) finds its reply no longer queued and does nothing.
    """
    # Listed before the claim, so no heartbeat can miss a claimed reply.
    running.add(str(message_id))
    try:
        _write_reply(str(message_id))
    except Exception as error:  # e.g. Redis or the database gone mid-reply: end it, don't leave it streaming
        logger.exception("reply %s failed", message_id)
        reply_jobs.reply_finish(
            message_id=message_id,
            status="failed",
            content="",
            stats={},
            model_name="",
            error=f"The worker failed: {error.__class__.__name__}",
        )
    finally:
        running.discard(str(message_id))


def _write_reply(message_id: str) -> None:
    with _pickups:
        picked = _pick_up(message_id)
    if picked is None:
        return
    job, engine, loop, opened = picked
    if isinstance(opened, ReplyOutcome):
        outcome = opened
    else:
        # The thread only waits now: give its database connection back, so that
        # MAX_BATCH replies in flight do not hold MAX_BATCH connections open.
        db.connection.close()
        outcome = loop.run(opened, key=job.message_id, channel=job.conversation_id)
    reply_jobs.reply_finish(
        message_id=job.message_id,
        status=outcome.status,
        content=outcome.content,
        stats=outcome.stats(),
        model_name=engine.info.name,
        error=outcome.error,
        verdicts=outcome.verdicts,
        original=outcome.original,
    )


# A burst's jobs are claimed and opened this many at a time, in about the order they
# came (the oldest waiter is woken first). All at once, they shared the cores and
# every first token of the burst came at its end; a few at a time, the first ones
# stream while the rest are picked up.
PICKUPS_AT_ONCE = 4
_pickups = threading.BoundedSemaphore(PICKUPS_AT_ONCE)


def _pick_up(
    message_id: str,
) -> tuple[reply_jobs.ReplyJob, Engine | PagedEngine, ReplyLoop, ReplyStream | ReplyOutcome] | None:
    """Claim the reply and open it (input moderation, the prompt); None when there is nothing to write."""
    job = reply_jobs.reply_claim(message_id=message_id)
    if job is None:
        return None
    try:
        engine, loop = holder.get()
    except RuntimeError as error:
        reply_jobs.reply_finish(
            message_id=job.message_id, status="failed", content="", stats={}, model_name="", error=str(error)
        )
        return None
    if live.stop_requested(job.message_id):  # stopped while it waited in the queue
        return job, engine, loop, ReplyOutcome("stopped", "", 0, 0, None, None)
    opened = ReplyStream.open(
        messages=job.messages,
        system_prompt=job.system_prompt,
        params=job.params,
        settings=StreamSettings(
            context_limit=min(settings.CONTEXT_LIMIT, engine.info.context_length),
            coalesce_ms=settings.STREAM_COALESCE_MS,
            coalesce_tokens=settings.STREAM_COALESCE_TOKENS,
        ),
        moderation=_moderation(job),
        raw=job.raw,
        stop=job.stop,
        started=time.monotonic(),
    )
    return job, engine, loop, opened


class _Chains:
    """The moderation chain, shared by every reply while the rules and policies stay the same.

    Shared so that the reply loop checks every reply's text in one call per
    hook; rebuilt when staff change a rule or a policy, which reaches a
    running worker at its next reply.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: object = None
        self._chain: ModerationChain | None = None

    def get(self) -> ModerationChain:
        policies = policy_mapping()
        key = (enabled_rules(), sorted(policies.items()))
        with self._lock:
            if self._chain is None or key != self._key:
                self._chain = ModerationChain.from_paths(
                    settings.MODERATION_HOOKS,
                    budget_ms=settings.MODERATION_BUDGET_MS,
                    fail_closed=settings.MODERATION_FAIL_CLOSED,
                    policies=policies,
                )
                self._key = key
            return self._chain


chains = _Chains()


def _moderation(job: reply_jobs.ReplyJob) -> ReplyModeration:
    context = ModerationContext(
        conversation_id=job.conversation_id,
        message_id=job.message_id,
        user_id=job.user_id,
        messages=tuple(job.messages),
    )
    return ReplyModeration(chain=chains.get(), context=context, holdback_chars=settings.STREAM_HOLDBACK_CHARS)


def _heartbeat() -> None:
    while not _stopping.is_set():
        try:
            workers.write_heartbeat(WORKER_NAME, holder.status())
            sweeper.sweep(owner=WORKER_NAME)
        except Exception:  # Redis may blink; the next beat tries again
            logger.warning("heartbeat failed", exc_info=True)
        _stopping.wait(workers.heartbeat_interval_s())


def _on_stop(message_id: str) -> None:
    if holder.loop is not None:
        holder.loop.stop(message_id)


@worker_ready.connect
def _on_worker_ready(**_: object) -> None:
    threading.Thread(target=holder.load, name="model-loader", daemon=True).start()
    threading.Thread(target=_heartbeat, name="heartbeat", daemon=True).start()
    reply_jobs.queue_announcer.start()
    threading.Thread(
        target=live.listen_for_stops, args=(_on_stop, _stopping), name="stop-listener", daemon=True
    ).start()


@worker_shutdown.connect
def _on_worker_shutdown(**_: object) -> None:
    _stopping.set()
    try:
        workers.remove_heartbeat(WORKER_NAME)
    except Exception:
        logger.warning("could not remove the heartbeat", exc_info=True)
