"""Where a decode step's time goes: one engine step by batch size and context length.

Builds a batch with the engine's own prefill (`inference.engine._Batch`), then
times its decode step (model forward with the padding mask, sampling, and the
hand-off to each request's queue) and, side by side, the model's forward alone
with and without the attention mask. Ends with the profiler's top kernels for
the largest case. Meant for a GPU and the 7B shape:

    python3 bench/decode_step.py --model mistral-7b --batches 1,8,64 --contexts 128,2048

It prints its machine line first and its tables last (`--markdown` for docs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import fmt, format_table, machine_description  # noqa: E402
from bench.engine import _DTYPES, build_model, random_prompts  # noqa: E402
from inference.engine import Engine, Request, _Batch  # noqa: E402
from inference.params import SamplingParams  # noqa: E402
from inference.sampling import new_generator  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, steps: int, step: object) -> float:
    """Median milliseconds of `step()` over `steps` calls, after two untimed ones."""
    times = []
    for i in range(steps + 2):
        _sync(device)
        start = time.perf_counter()
        step()  # type: ignore[operator]
        _sync(device)
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def _batch(engine: Engine, batch: int, context: int, seed: int) -> _Batch:
    params = SamplingParams(temperature=0.0, max_tokens=1_000_000, ignore_eos=True)
    requests = [
        Request(prompt=p, params=params, budget=1_000_000, generator=new_generator(params, engine.device))
        for p in random_prompts(batch, context, seed)
    ]
    return _Batch.prefill(engine, requests)


def _forward(engine: Engine, decoding: _Batch, *, masked: bool) -> None:
    mask, positions = decoding.cache.extend()
    engine.model(
        input_ids=decoding.last_tokens[:, None],
        attention_mask=mask if masked else None,
        position_ids=positions[:, None],
        past_key_values=decoding.cache.hf_cache,
        use_cache=True,
    )


def _drain(decoding: _Batch) -> None:
    for request in decoding.requests:  # the step puts each id in its request's queue
        while not request.tokens.empty():
            request.tokens.get_nowait()


def add_model_arguments(parser: argparse.ArgumentParser, *, batches: str, contexts: str) -> None:
    """The options every step benchmark takes: model, device, dtype, the cases, steps per case."""
    parser.add_argument("--model", choices=("tiny", "mistral-7b"), default="tiny")
    parser.add_argument("--device", help="default: cpu for tiny, cuda for mistral-7b")
    parser.add_argument("--dtype", choices=tuple(_DTYPES), help="default: float32 on cpu, bfloat16 on cuda")
    parser.add_argument("--batches", default=batches)
    parser.add_argument("--contexts", default=contexts)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case (median)")


def device_and_dtype(args: argparse.Namespace) -> tuple[str, torch.dtype]:
    device_name = args.device or ("cuda" if args.model == "mistral-7b" else "cpu")
    return device_name, _DTYPES[args.dtype or ("bfloat16" if device_name == "cuda" else "float32")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, batches="1,8,64", contexts="128,2048")
    parser.add_argument("--profile", action="store_true", help="profile the largest case's steps")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    device_name, dtype = device_and_dtype(args)
    print(machine_description(), flush=True)
    model, name = build_model(args.model, device_name, dtype)
    engine = Engine(model, name=name, max_batch=max(int(b) for b in args.batches.split(",")))
    device = engine.device
    rows = []
    with torch.inference_mode():
        for batch in (int(b) for b in args.batches.split(",")):
            for context in (int(c) for c in args.contexts.split(",")):
                decoding = _batch(engine, batch, context, seed=batch * 7919 + context)

                def engine_step(decoding: _Batch = decoding) -> None:
                    decoding.decode(engine)
                    _drain(decoding)

                step_ms = _timed(device, args.steps, engine_step)
                masked_ms = _timed(device, args.steps, lambda d=decoding: _forward(engine, d, masked=True))
                unmasked_ms = _timed(device, args.steps, lambda d=decoding: _forward(engine, d, masked=False))
                rows.append(
                    [
                        str(batch),
                        f"{context:,}",
                        fmt(step_ms),
                        fmt(batch * 1000 / step_ms, 0),
                        fmt(masked_ms),
                        fmt(unmasked_ms),
                    ]
                )
                print("  " + " | ".join(rows[-1]), flush=True)
                del decoding, engine_step  # free this case's cache before the next prefill
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        if args.profile:
            _profile(engine, args)
    print()
    headers = ["batch", "context", "engine step ms", "tok/s", "forward, mask ms", "forward, no mask ms"]
    print(format_table(headers, rows, markdown=args.markdown))


def _profile(engine: Engine, args: argparse.Namespace) -> None:
    batch = max(int(b) for b in args.batches.split(","))
    context = max(int(c) for c in args.contexts.split(","))
    decoding = _batch(engine, batch, context, seed=1)
    for _ in range(2):
        decoding.decode(engine)
    _sync(engine.device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if engine.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(3):
            decoding.decode(engine)
        _sync(engine.device)
        wall_ms = (time.perf_counter() - start) * 1000
    sort = "cuda_time_total" if engine.device.type == "cuda" else "cpu_time_total"
    print(f"\nprofile: batch {batch}, context {context}, 3 engine steps in {wall_ms:.1f} ms")
    print(prof.key_averages().table(sort_by=sort, row_limit=18, max_name_column_width=60))


if __name__ == "__main__":
    main()
