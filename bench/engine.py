"""Decode throughput and time to first token of the inference engine, against its baselines.

Many people chat at once: `--concurrency C` keeps C requests in flight (C client
threads, each taking the next request as soon as its previous one ends), so at
C = 16 sixteen requests arrive together and new ones keep arriving. For each
concurrency level and each mode this prints the aggregate tokens/s (every
token of every request / wall time) and the TTFT p50/p99 (submit -> first
token id; it includes any time spent waiting for earlier requests):

- `sequential`: transformers' `model.generate`, one request at a time, FIFO
  (the baseline: a worker that serves one person at a time);
- `engine`: `inference.engine.Engine.generate` (the eager engine: transformers'
  model, left-padded batch), one thread per request;
- `paged`: `inference.paged_engine.PagedEngine.generate` (the worker's default: our
  forward over a paged KV cache, chunked prefill, CUDA graphs on a GPU);
- `hf-cb`: transformers' own continuous batching (`ContinuousBatchingManager`),
  streaming, its results routed by one dispatcher thread (transformers #42943).

All modes share one model, the same random prompts and greedy decoding. The
output length is fixed (EOS ignored) when `SamplingParams` has `ignore_eos`;
otherwise EOS ends a request early and the tokens actually produced count.

    .venv/bin/python bench/engine.py                       # tiny model, CPU, ~70 s on 2 cores
    .venv/bin/python bench/engine.py --markdown            # same, table for docs/benchmarks.md
    .venv/bin/python bench/engine.py --model mistral-7b --prompt-tokens 2048 --max-tokens 256 \\
        --concurrency 1,64 --modes engine                  # on a GPU: 7B shape, random bf16 weights

`--follow-up N` then measures the next turn of a conversation of N tokens
(default 6000 with `--follow-up`): the paged engine answers the history once,
then the history + its reply + a new question is sent again, and its TTFT is
timed with the prefix cache on and off (and with the eager engine).

    .venv/bin/python bench/engine.py --modes engine,paged --repeats 3 --follow-up   # old vs new, one run

Ratios are only meaningful within one run; absolute times only on a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import queue
import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import GenerationConfig, MistralForCausalLM, PreTrainedModel  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

from bench.common import fmt, format_table, machine_description, percentile  # noqa: E402
from inference.engine import Engine  # noqa: E402
from inference.paged_engine import PagedEngine, paged_engine_for  # noqa: E402
from inference.params import SamplingParams  # noqa: E402
from inference.tiny import TINY_MODEL_NAME, build_tiny_model, mistral_7b_config  # noqa: E402

MODES = ("sequential", "engine", "paged", "hf-cb")
_END = object()  # end of one request's token stream
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def supports_ignore_eos() -> bool:
    """Whether our SamplingParams can ask for a fixed output length (EOS ignored)."""
    return "ignore_eos" in {f.name for f in dataclasses.fields(SamplingParams)}


# --- the model ----------------------------------------------------------------


def build_model(name: str, device: str, dtype: torch.dtype) -> tuple[PreTrainedModel, str]:
    """The tiny model (seeded, as the worker builds it) or the 7B architecture with random weights."""
    if name == "tiny":
        model = build_tiny_model()
        with torch.no_grad():
            for param in model.parameters():  # not model.to(dtype): RoPE buffers stay float32
                param.data = param.data.to(dtype)
        return model.to(device).eval(), TINY_MODEL_NAME
    # 7.24 B parameters built straight on the device in the target dtype: no 29 GB fp32
    # detour. RoPE's inv_freq is computed in float32 whatever the default dtype.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = MistralForCausalLM(mistral_7b_config())
    finally:
        torch.set_default_dtype(previous)
    return model.eval(), "mistral-7b-v0.2-architecture-random-weights"


def random_prompts(count: int, length: int, seed: int) -> list[list[int]]:
    """`count` prompts of `length` ids: BOS then uniform ids that are not control tokens."""
    rng = random.Random(seed)
    return [[1] + [rng.randrange(3, 32000) for _ in range(length - 1)] for _ in range(count)]


# --- the three ways to serve a request ----------------------------------------


class Backend:
    """Serves requests from many threads: `stream(prompt)` yields the generated ids."""

    name = ""

    def stream(self, prompt: list[int]) -> Iterator[int]:
        raise NotImplementedError

    def start_level(self) -> None:
        """Called before each concurrency level."""

    def close(self) -> None:
        """Called once after the last level."""


class _QueueStreamer(BaseStreamer):
    """Hands `generate`'s new tokens to a queue; its first `put` is the prompt, skipped."""

    def __init__(self, out: queue.Queue) -> None:
        self.out = out
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.out.put(token)

    def end(self) -> None:
        self.out.put(_END)


class SequentialBackend(Backend):
    """One worker thread runs `model.generate` for one request at a time, in arrival order.

    With `max_served` set, a level serves only that many requests: the rest,
    which arrived with them, are dropped unserved (for slow models at high
    concurrency); their TTFT would only have been longer.
    """

    name = "sequential"

    def __init__(
        self, model: PreTrainedModel, max_tokens: int, fixed_length: bool, max_served: int = 0
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.fixed_length = fixed_length
        self.max_served = max_served
        self.served = 0
        self.eos = model.config.eos_token_id
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="sequential-worker", daemon=True)
        self.thread.start()

    def start_level(self) -> None:
        self.served = 0

    def stream(self, prompt: list[int]) -> Iterator[int]:
        out: queue.Queue = queue.Queue()
        self.jobs.put((prompt, out))
        while (item := out.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            prompt, out = job
            if self.max_served and self.served >= self.max_served:
                out.put(_END)
                continue
            self.served += 1
            try:
                ids = torch.tensor([prompt], dtype=torch.long, device=self.model.device)
                with torch.inference_mode():
                    self.model.generate(
                        ids,
                        attention_mask=torch.ones_like(ids),
                        max_new_tokens=self.max_tokens,
                        min_new_tokens=self.max_tokens if self.fixed_length else None,
                        do_sample=False,
                        pad_token_id=self.eos,
                        streamer=_QueueStreamer(out),
                    )
            except BaseException as error:  # reported in the client thread
                out.put(error)
                out.put(_END)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=60)


class EngineBackend(Backend):
    """Our engine: every client thread calls `Engine.generate` itself."""

    name = "engine"

    def __init__(
        self, model: PreTrainedModel, name: str, max_tokens: int, fixed_length: bool, max_batch: int
    ):
        kwargs = {}
        # The batched engine takes `max_batch`; the per-thread one does not.
        if "max_batch" in inspect.signature(Engine.__init__).parameters:
            kwargs["max_batch"] = max_batch
        self.engine = Engine(model, name=name, **kwargs)
        extra = {"ignore_eos": True} if fixed_length else {}
        self.params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=0, **extra)

    def stream(self, prompt: list[int]) -> Iterator[int]:
        yield from self.engine.generate(prompt, self.params)

    def close(self) -> None:
        for method in ("close", "shutdown", "stop"):
            if callable(getattr(self.engine, method, None)):
                getattr(self.engine, method)()
                return


class PagedBackend(EngineBackend):
    """The paged engine over the same weights (converted to our forward): every client thread calls `generate`."""

    name = "paged"

    def __init__(
        self,
        model: PreTrainedModel,
        name: str,
        max_tokens: int,
        fixed_length: bool,
        max_batch: int,
        cache_gb: float,
    ):
        self.engine = paged_engine_for(model, name=name, max_batch=max_batch, kv_cache_gb=cache_gb)
        extra = {"ignore_eos": True} if fixed_length else {}
        self.params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=0, **extra)


class HFContinuousBatchingBackend(Backend):
    """transformers' ContinuousBatchingManager, streaming.

    Results are read by one dispatcher thread and routed to per-request
    queues: `request_id_iter` from many threads requeues other requests'
    results and can starve them (transformers #42943). No `generate()` runs
    on the model while the manager does: the modes run one after the other.
    """

    name = "hf-cb"

    def __init__(
        self,
        model: PreTrainedModel,
        max_tokens: int,
        fixed_length: bool,
        max_concurrency: int,
        prompt_tokens: int,
    ) -> None:
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        eos = model.config.eos_token_id
        self.eos = -1 if fixed_length else eos  # -1: never matches, so the length is fixed
        self.max_tokens = max_tokens
        gen_config = GenerationConfig(
            do_sample=False, max_new_tokens=max_tokens, eos_token_id=self.eos, pad_token_id=eos
        )
        if model.device.type == "cuda":
            cb_config = ContinuousBatchingConfig(max_requests_per_batch=max_concurrency)
        else:
            # Auto-sizing fills 60-90% of host RAM and a dense mask of max_batch_tokens^2 on the
            # CPU (it took 9 s to allocate): size the paged cache for what this run needs.
            page = 256
            per_request = math.ceil((prompt_tokens + max_tokens) / page) + 1
            cb_config = ContinuousBatchingConfig(
                page_size=page,
                num_blocks=max_concurrency * per_request + 4,
                max_batch_tokens=max(256, min(2048, max_concurrency * prompt_tokens)),
                max_requests_per_batch=max_concurrency,
            )
        self.manager = model.init_continuous_batching(
            generation_config=gen_config, continuous_batching_config=cb_config
        )
        if model.device.type == "cuda":
            self.manager.warmup()
        self.manager.start()
        self.routes: dict[str, queue.Queue] = {}
        self.lock = threading.Lock()
        self.counter = 0
        self.running = True
        self.dispatcher = threading.Thread(target=self._dispatch, name="hf-cb-dispatcher", daemon=True)
        self.dispatcher.start()

    def _dispatch(self) -> None:
        while self.running:
            output = self.manager.get_result(timeout=0.05)
            if output is None:
                if not self.manager.is_running():
                    time.sleep(0.01)
                continue
            with self.lock:
                route = self.routes.get(output.request_id)
            if route is not None:
                route.put(output)

    def stream(self, prompt: list[int]) -> Iterator[int]:
        out: queue.Queue = queue.Queue()
        with self.lock:
            request_id = f"bench-{self.counter}"
            self.counter += 1
            self.routes[request_id] = out  # before add_request: no output can miss its route
        try:
            added = self.manager.add_request(
                prompt,
                request_id=request_id,
                max_new_tokens=self.max_tokens,
                streaming=True,
                eos_token_id=self.eos,
            )
            if added is None:
                raise RuntimeError("the continuous batching manager refused the request")
            sent = 0
            while True:
                output = out.get(timeout=600)
                if output.error:
                    raise RuntimeError(f"hf-cb request failed: {output.error}")
                tokens = output.generated_tokens  # cumulative: everything so far
                yield from tokens[sent:]
                sent = len(tokens)
                if output.is_finished():
                    return
        finally:
            with self.lock:
                self.routes.pop(request_id, None)

    def close(self) -> None:
        self.running = False
        self.dispatcher.join(timeout=5)
        self.manager.stop(block=True, timeout=60)  # also restores the attention implementation
        self.manager.destroy()


# --- measuring ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Level:
    mode: str
    concurrency: int
    submitted: int
    served: int
    tokens: int
    wall_s: float
    ttft_ms: list[float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0


def run_level(backend: Backend, prompts: list[list[int]], concurrency: int) -> Level:
    """C client threads; each submits the next prompt as soon as its previous request ends."""
    backend.start_level()
    lock = threading.Lock()
    next_index = 0
    ttfts: list[float] = []
    tokens = 0
    served = 0
    errors: list[BaseException] = []
    barrier = threading.Barrier(concurrency + 1)

    def client() -> None:
        nonlocal next_index, tokens, served
        barrier.wait()
        while not errors:
            with lock:
                index, next_index = next_index, next_index + 1
            if index >= len(prompts):
                return
            submitted = time.perf_counter()
            first: float | None = None
            count = 0
            try:
                for _ in backend.stream(prompts[index]):
                    if first is None:
                        first = time.perf_counter()
                    count += 1
            except BaseException as error:
                errors.append(error)
                return
            with lock:
                tokens += count
                if first is not None:
                    served += 1
                    ttfts.append((first - submitted) * 1000.0)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Level(backend.name, concurrency, len(prompts), served, tokens, wall, ttfts)


def make_backend(
    mode: str, model: PreTrainedModel, name: str, args: argparse.Namespace, fixed: bool
) -> Backend:
    top = max(args.concurrency)
    if mode == "sequential":
        return SequentialBackend(model, args.max_tokens, fixed, args.sequential_max_requests)
    if mode == "engine":
        return EngineBackend(model, name, args.max_tokens, fixed, args.max_batch or top)
    if mode == "paged":
        return PagedBackend(model, name, args.max_tokens, fixed, args.max_batch or top, args.kv_cache_gb)
    return HFContinuousBatchingBackend(model, args.max_tokens, fixed, top, args.prompt_tokens)


def print_results(levels: list[Level], failures: dict[str, str], markdown: bool) -> None:
    headers = ["mode", "concurrency", "requests", "tokens", "wall s", "tok/s", "TTFT p50 ms", "TTFT p99 ms"]
    rows = []
    for level in levels:
        requests = (
            str(level.served) if level.served == level.submitted else f"{level.served}/{level.submitted}*"
        )
        rows.append(
            [
                level.mode,
                str(level.concurrency),
                requests,
                f"{level.tokens:,}",
                fmt(level.wall_s, 2),
                fmt(level.tokens_per_s, 0),
                fmt(percentile(level.ttft_ms, 50)),
                fmt(percentile(level.ttft_ms, 99)),
            ]
        )
    print(format_table(headers, rows, markdown=markdown))
    if any(level.served != level.submitted for level in levels):
        print(
            "\n* served/submitted: the rest arrived at once but were dropped unserved (--sequential-max-requests)"
        )

    by_key = {(level.mode, level.concurrency): level for level in levels}
    pairs = [("engine", "sequential"), ("hf-cb", "sequential"), ("engine", "hf-cb"), ("paged", "engine")]
    ratio_rows = []
    for concurrency in sorted({level.concurrency for level in levels}):
        cells = [str(concurrency)]
        for top, bottom in pairs:
            a, b = by_key.get((top, concurrency)), by_key.get((bottom, concurrency))
            cells.append(f"{a.tokens_per_s / b.tokens_per_s:.2f}x" if a and b and b.tokens_per_s else "n/a")
        ratio_rows.append(cells)
    print()
    print("Aggregate tokens/s ratios (same run):")
    print(format_table(["concurrency", *(f"{a}/{b}" for a, b in pairs)], ratio_rows, markdown=markdown))
    for mode, reason in failures.items():
        print(f"\n{mode}: not measured: {reason}")


# --- the next turn of a long conversation --------------------------------------------


def follow_up_ttft(
    model: PreTrainedModel, name: str, args: argparse.Namespace, repeats: int = 3
) -> dict[str, list[float]]:
    """TTFT (ms) of a follow-up turn: history, the reply to it, and a new question of 40 tokens.

    Each repeat is a new conversation (other random ids), so only its own
    history can be in the prefix cache, as for a person's next message.
    """
    reply = SamplingParams(temperature=0.0, max_tokens=32, ignore_eos=True)
    first_only = SamplingParams(temperature=0.0, max_tokens=1)
    engines: dict[str, Engine | PagedEngine] = {
        "paged, prefix cache on": paged_engine_for(
            model, name=name, max_batch=4, kv_cache_gb=args.kv_cache_gb
        ),
        "paged, prefix cache off": paged_engine_for(
            model, name=name, max_batch=4, kv_cache_gb=args.kv_cache_gb, prefix_cache=False
        ),
        "engine (eager)": Engine(model, name=name, max_batch=4),
    }
    times: dict[str, list[float]] = {label: [] for label in engines}
    for repeat in range(repeats):
        history = random_prompts(1, args.follow_up, seed=args.seed + 777 + repeat)[0]
        question = random_prompts(1, 41, seed=args.seed + 999 + repeat)[0][1:]
        for label, engine in engines.items():
            answer = list(engine.generate(history, reply))
            follow_up = [*history, *answer, 2, *question]  # the reply, EOS, the next [INST] ... [/INST]
            started = time.perf_counter()
            next(iter(engine.generate(follow_up, first_only)))
            times[label].append((time.perf_counter() - started) * 1000.0)
    return times


def print_follow_up(times: dict[str, list[float]], tokens: int, markdown: bool) -> None:
    print(
        f"Follow-up turn on a {tokens:,}-token conversation: time to the first token (ms, {len(next(iter(times.values())))} conversations)"
    )
    cached = percentile(times["paged, prefix cache on"], 50) or 0.0
    rows = [
        [
            label,
            fmt(percentile(values, 50)),
            fmt(max(values)),
            f"{(percentile(values, 50) or 0) / cached:.1f}x" if cached else "n/a",
        ]
        for label, values in times.items()
    ]
    print(
        format_table(["engine", "TTFT p50 ms", "TTFT max ms", "vs prefix cache on"], rows, markdown=markdown)
    )


def parse_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def parse_modes(text: str) -> list[str]:
    modes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)}; got {text!r}")
    return modes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "mistral-7b"), default="tiny")
    parser.add_argument("--device", help="default: cpu for tiny, cuda for mistral-7b")
    parser.add_argument("--dtype", choices=tuple(_DTYPES), help="default: float32 on cpu, bfloat16 on cuda")
    parser.add_argument("--prompt-tokens", type=int, default=32, help="random prompt length (default 32)")
    parser.add_argument("--max-tokens", type=int, default=64, help="new tokens per request (default 64)")
    parser.add_argument("--concurrency", type=parse_list, default=[1, 4, 16, 64], help="default 1,4,16,64")
    parser.add_argument("--modes", type=parse_modes, default=list(MODES), help="default " + ",".join(MODES))
    parser.add_argument(
        "--min-requests", type=int, default=16, help="requests per level: max(concurrency, this) (default 16)"
    )
    parser.add_argument(
        "--sequential-max-requests",
        type=int,
        default=0,
        help="serve at most this many requests per level in sequential mode (0 = all)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=0, help="the engine's max_batch (default: top concurrency)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random prompts")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each level and mode, alternating; the median is shown"
    )
    parser.add_argument(
        "--kv-cache-gb", type=float, default=0.25, help="the paged engine's KV cache (default 0.25)"
    )
    parser.add_argument(
        "--follow-up",
        type=int,
        nargs="?",
        const=6000,
        default=0,
        help="also time the next turn of a conversation of this many tokens (default 6000)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    args = parser.parse_args(argv)

    device = args.device or ("cpu" if args.model == "tiny" else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(
            f"--device {device}: CUDA is not available here (mistral-7b needs a GPU; --device cpu forces it)"
        )
    dtype = _DTYPES[args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")]
    fixed = supports_ignore_eos()

    print(f"machine: {machine_description()}")
    model, name = build_model(args.model, device, dtype)
    print(
        f"model: {name}, {sum(p.numel() for p in model.parameters()) / 1e6:,.1f} M parameters, {device}, "
        f"{str(dtype).removeprefix('torch.')}; prompts {args.prompt_tokens} tokens; "
        + (
            f"{args.max_tokens} new tokens each (fixed, EOS ignored)"
            if fixed
            else f"up to {args.max_tokens} new tokens each (greedy; EOS honoured: SamplingParams has no ignore_eos)"
        ),
        flush=True,
    )

    levels: list[Level] = []
    failures: dict[str, str] = {}
    warm = random_prompts(1, args.prompt_tokens, seed=args.seed + 10_000)
    # Concurrency outside, modes inside: the runs a ratio compares are taken minutes apart
    # at most, so a neighbour's load drifting on a shared machine skews ratios less.
    # Each run gets a fresh backend, closed before the next: never a `generate()` while
    # a transformers manager runs on the same model (transformers PR #48735).
    for concurrency in args.concurrency:
        count = max(concurrency, args.min_requests)
        prompts = random_prompts(count, args.prompt_tokens, seed=args.seed + concurrency)
        runs: dict[str, list[Level]] = {}
        # Modes alternate within each repeat, so a burst of load on a shared machine hits them alike.
        for mode in [m for _ in range(args.repeats) for m in args.modes]:
            if mode in failures:
                continue
            backend: Backend | None = None
            try:
                backend = make_backend(mode, model, name, args, fixed)
                run_level(backend, warm, 1)  # untimed: first-call allocations, kernel selection
                level = run_level(backend, prompts, concurrency)
            except Exception as error:
                failures[mode] = f"{type(error).__name__}: {error}"
                print(f"{mode}: failed: {failures[mode]}", file=sys.stderr, flush=True)
                continue
            finally:
                if backend is not None:
                    backend.close()
            runs.setdefault(mode, []).append(level)
            print(
                f"  {mode:>10} c={concurrency:<3} {level.tokens:>6} tokens in {level.wall_s:6.2f} s = "
                f"{level.tokens_per_s:8.1f} tok/s, TTFT p50 {fmt(percentile(level.ttft_ms, 50))} ms",
                file=sys.stderr,
                flush=True,
            )
        # Each mode's median run by throughput (its TTFTs with it).
        levels += [sorted(done, key=lambda lv: lv.tokens_per_s)[len(done) // 2] for done in runs.values()]
    print()
    if args.repeats > 1:
        print(f"Each row: the median of {args.repeats} runs by tok/s, the modes alternating.")
    print_results(levels, failures, args.markdown)
    if args.follow_up:
        print()
        print_follow_up(follow_up_ttft(model, name, args), args.follow_up, args.markdown)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
