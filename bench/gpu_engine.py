"""The paged engine's timings on a GPU: the timing half of `bench/gpu.sh` (issue 14's table).

A 7B-shape Mistral with random bf16 weights (`--model mistral-7b`, the
default on CUDA) behind `inference.paged_engine.PagedEngine`, as the worker
runs it (CUDA graphs on, prefix cache on), measured through its public
interface (`submit` with a sink: the ids of every step, timed on arrival):

- batch-1 decode at a 2k context: tok/s between the first and the last id;
- aggregate decode tok/s with N requests of 2k-token prompts at once
  (N = 8, 32, 64, 128): every id after each request's first, over the time
  from the last first id to the last id; and end to end (submit to last id);
- TTFT p50/p99 of 32 simultaneous 1k-token prompts;
- the follow-up turn of a 16k-token conversation: TTFT with the prefix cache
  (history, reply and question; only the question and the reply's tail are
  computed) and without it (the whole history prefilled again);
- `graph.replay()` for one decode step, against the same step run eagerly.

    .venv/bin/python bench/gpu_engine.py                      # on a GPU, ~4 minutes
    .venv/bin/python bench/gpu_engine.py --model tiny --device cpu --scale 0.1   # smoke test

Nothing here is a correctness check (`bench/gpu_check.py` is): a random
model's tokens are noise; only the times mean something.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import fmt, format_table, machine_description, percentile  # noqa: E402
from bench.engine import build_model  # noqa: E402
from inference.mistral import MistralForward  # noqa: E402
from inference.paged_engine import PagedEngine, paged_engine_for  # noqa: E402
from inference.params import SamplingParams  # noqa: E402
from inference.steps import StepRow  # noqa: E402


class Timed:
    """A sink that stamps every id of every request as it arrives."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stamps: dict[int, list[float]] = {}
        self.done = threading.Semaphore(0)

    def __call__(self, rows: list[StepRow]) -> None:
        now = time.perf_counter()
        with self.lock:
            for row in rows:
                self.stamps.setdefault(row.request.tag, []).extend([now] * len(row.token_ids))
                if row.finished:
                    if row.error is not None:
                        print(f"request {row.request.tag} failed: {row.error!r}", file=sys.stderr)
                    self.done.release()


def prompts(count: int, length: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[1] + [rng.randrange(3, 32000) for _ in range(length - 1)] for _ in range(count)]


def run_batch(
    engine: PagedEngine, batch: list[list[int]], max_tokens: int
) -> tuple[float, dict[int, list[float]]]:
    """Submit every prompt at once; the submit time and each request's id arrival times."""
    sink = Timed()
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    started = time.perf_counter()
    for index, prompt in enumerate(batch):
        engine.submit(prompt, params, sink=sink, tag=index)
    for _ in batch:
        sink.done.acquire()
    return started, sink.stamps


def decode_rate(stamps: dict[int, list[float]]) -> float:
    """Ids after each request's first, per second, from the last first id to the last id."""
    start = max(times[0] for times in stamps.values())
    end = max(times[-1] for times in stamps.values())
    counted = sum(sum(1 for t in times[1:] if t > start) for times in stamps.values())
    return counted / (end - start) if end > start else 0.0


def follow_up(engine: PagedEngine, history_tokens: int, *, prefix_cache: bool, seed: int) -> float:
    """TTFT (ms) of the next turn after a conversation of `history_tokens` (a new one each call)."""
    engine.blocks.prefix_cache = prefix_cache
    history = prompts(1, history_tokens, seed)[0]
    reply = list(engine.generate(history, SamplingParams(temperature=0.0, max_tokens=64, ignore_eos=True)))
    question = prompts(1, 41, seed + 1)[0][1:]
    turn = [*history, *reply, 2, *question]
    started = time.perf_counter()
    next(iter(engine.generate(turn, SamplingParams(temperature=0.0, max_tokens=1))))
    ttft = (time.perf_counter() - started) * 1000.0
    engine.blocks.prefix_cache = True
    return ttft


def replay_overhead(engine: PagedEngine, bucket: int, steps: int = 50) -> tuple[float, float, float]:
    """(graph replay ms per step, host ms to launch it, eager ms per step) for a decode of `bucket` rows."""
    runner = engine.runner
    if bucket not in runner.graphs:
        return float("nan"), float("nan"), float("nan")
    runner._pad_only(bucket)
    graph = runner.graphs[bucket]
    torch.cuda.synchronize()
    launch = 0.0
    started = time.perf_counter()
    for _ in range(steps):
        before = time.perf_counter()
        graph.replay()
        launch += time.perf_counter() - before
    torch.cuda.synchronize()
    replay = (time.perf_counter() - started) / steps * 1000.0
    with torch.inference_mode():
        runner._decode_step(bucket)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            runner._decode_step(bucket)
        torch.cuda.synchronize()
    eager = (time.perf_counter() - started) / steps * 1000.0
    return replay, launch / steps * 1000.0, eager


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "mistral-7b"), default="mistral-7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every token count (smoke tests)")
    parser.add_argument(
        "--batches", default="8,32,64,128", help="concurrent 2k requests (default 8,32,64,128)"
    )
    parser.add_argument("--kv-cache-gb", type=float, default=0.0, help="default: 85%% of free memory on CUDA")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(
            "CUDA is not available here (use --model tiny --device cpu --scale 0.1 for a smoke test)"
        )

    def n(tokens: int) -> int:
        return max(2, int(tokens * args.scale))

    batches = [int(b) for b in args.batches.split(",")]
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    print(f"machine: {machine_description()}", flush=True)
    loaded = time.perf_counter()
    model, name = build_model(args.model, args.device, dtype)
    # Converted (and transformers' layers dropped) before the cache is sized from what is free.
    forward = MistralForward.from_hf(model, consume=True)
    del model
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()  # what the allocator keeps reserved is not free to the driver
    cache_gb = args.kv_cache_gb or None
    if cache_gb is None:
        cache_gb = 0.25 if args.device == "cpu" else 0.85 * torch.cuda.mem_get_info()[0] / 2**30
    engine = paged_engine_for(forward, name=name, max_batch=max(batches), kv_cache_gb=cache_gb)
    load = engine.load()
    print(
        f"model: {name}, {engine.info.parameters / 1e9:.2f} B parameters, {engine.info.dtype}; KV cache "
        f"{load.blocks_total:,} blocks of {load.block_size} ({load.blocks_total * load.block_size:,} tokens); "
        f"graphs for {sorted(engine.runner.graphs)}; ready in {time.perf_counter() - loaded:.0f} s",
        flush=True,
    )
    rows: list[list[str]] = []

    def report(what: str, value: str, unit: str) -> None:
        rows.append([what, value, unit])
        print(f"  {what}: {value} {unit}", file=sys.stderr, flush=True)

    run_batch(engine, prompts(2, n(512), 1), 8)  # warm-up: first prefill shapes, allocator
    _, stamps = run_batch(engine, prompts(1, n(2048), 2), n(256))
    times = stamps[0]
    report("batch 1 decode, 2k context", fmt((len(times) - 1) / (times[-1] - times[0]), 1), "tok/s")
    for count in batches:
        started, stamps = run_batch(engine, prompts(count, n(2048), 100 + count), n(256))
        total = sum(len(t) for t in stamps.values()) / (max(t[-1] for t in stamps.values()) - started)
        report(f"{count} x 2k, decode", fmt(decode_rate(stamps), 0), "tok/s")
        report(f"{count} x 2k, end to end (prefill included)", fmt(total, 0), "tok/s")
    started, stamps = run_batch(engine, prompts(32, n(1024), 3), 4)
    ttfts = [(t[0] - started) * 1000.0 for t in stamps.values()]
    report("32 x 1k at once, TTFT p50", fmt(percentile(ttfts, 50)), "ms")
    report("32 x 1k at once, TTFT p99", fmt(percentile(ttfts, 99)), "ms")
    for cached in (True, False):
        ttft = [follow_up(engine, n(16384), prefix_cache=cached, seed=50 + i) for i in range(3)]
        report(
            f"follow-up turn on 16k, prefix cache {'on' if cached else 'off'}, TTFT p50",
            fmt(percentile(ttft, 50)),
            "ms",
        )
    report("prefix cache hit rate over the run", fmt(100 * engine.load().prefix_hit_rate), "%")
    if engine.runner.graphs:
        for bucket in (1, 64):
            replay, launch, eager = replay_overhead(engine, min(bucket, max(batches)))
            report(
                f"decode step of {bucket}: graph replay / host launch / eager",
                f"{replay:.2f} / {launch:.3f} / {eager:.2f}",
                "ms",
            )
    print()
    print(format_table(["what", "value", "unit"], rows, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
