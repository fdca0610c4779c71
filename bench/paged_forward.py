"""One decode step: our paged forward against transformers' eager model, by batch size and context.

Both run the same weights on the same rows: transformers with its own
`DynamicCache` (rows of equal length, so no padding mask), ours over a
`PagedKV` whose blocks are scattered. Each case is prefilled once, then the
median of ``--steps`` decode steps is timed, the two taking turns step by
step (each step appends one token per row, so the context grows by
``--steps`` during the timing). The tiny model by
default; ``--model mistral-7b --device cuda`` on a GPU:

    python3 bench/paged_forward.py --batches 1,16,64 --contexts 128,1024

Prints its machine line first and its table last (``--markdown`` for docs).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import DynamicCache, PreTrainedModel  # noqa: E402

from bench.common import fmt, format_table, machine_description  # noqa: E402
from bench.decode_step import add_model_arguments, device_and_dtype  # noqa: E402
from bench.engine import build_model  # noqa: E402
from inference.forward_batch import ForwardBatch  # noqa: E402
from inference.mistral import MistralForward  # noqa: E402
from inference.paged_kv import PagedKV  # noqa: E402

BLOCK_SIZE = 16


def _alternating(device: torch.device, steps: int, *cases: Callable[[], object]) -> list[float]:
    """Median milliseconds of each case's step, the cases taking turns step by step, so that
    a shared machine's load falls on all of them alike; two untimed rounds first."""
    times: list[list[float]] = [[] for _ in cases]
    for round_ in range(steps + 2):
        for case, step in zip(times, cases, strict=True):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if round_ >= 2:
                case.append((time.perf_counter() - start) * 1000)
    return [sorted(case)[len(case) // 2] for case in times]


class PagedRows:
    """``batch`` rows of ``context`` tokens in a paged cache, one decode step at a time."""

    def __init__(self, forward: MistralForward, ids: torch.Tensor, *, room: int) -> None:
        batch, context = ids.shape
        device = forward.device
        self.forward = forward
        per_row = -(-(context + room) // BLOCK_SIZE)
        order = torch.randperm(batch * per_row)
        self.kv = PagedKV.allocate(
            forward.config,
            num_blocks=batch * per_row,
            block_size=BLOCK_SIZE,
            dtype=forward.dtype,
            device=device,
        )
        self.tables = order.view(batch, per_row).int().to(device)
        self.lengths = torch.full((batch,), context, dtype=torch.long, device=device)
        # Prefill every row in one step.
        positions = torch.arange(context, device=device).repeat(batch)
        rows = torch.arange(batch, device=device).repeat_interleave(context)
        self.last = self._step(ids.flatten().to(device), positions, rows, context)[:, None]

    def _step(
        self, ids: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor, query: int
    ) -> torch.Tensor:
        batch = self.tables.shape[0]
        slots = self.tables[rows, positions // BLOCK_SIZE].long() * BLOCK_SIZE + positions % BLOCK_SIZE
        step = ForwardBatch(
            input_ids=ids,
            positions=positions,
            slot_mapping=slots,
            query_start=torch.arange(0, (batch + 1) * query, query, dtype=torch.int32, device=ids.device),
            context_lens=(positions.view(batch, query)[:, -1] + 1).int(),
            block_tables=self.tables,
            max_query_len=query,
            max_context_len=int(positions.max()) + 1,
        )
        return self.forward(step, self.kv, check=False).argmax(-1)

    def decode(self) -> None:
        rows = torch.arange(self.tables.shape[0], device=self.lengths.device)
        self.last = self._step(self.last.flatten(), self.lengths, rows, 1)[:, None]
        self.lengths += 1


class HFRows:
    """The same rows in transformers' eager model with its `DynamicCache`."""

    def __init__(self, model: PreTrainedModel, ids: torch.Tensor) -> None:
        self.model = model
        self.cache = DynamicCache(config=model.config)
        out = model(input_ids=ids.to(model.device), past_key_values=self.cache, use_cache=True)
        self.last = out.logits[:, -1].argmax(-1)[:, None]

    def decode(self) -> None:
        out = self.model(input_ids=self.last, past_key_values=self.cache, use_cache=True)
        self.last = out.logits[:, -1].argmax(-1)[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, batches="1,16,64", contexts="128,1024")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name, dtype = device_and_dtype(args)
    print(machine_description(), flush=True)
    model, _ = build_model(args.model, device_name, dtype)
    model.config._attn_implementation = "eager"  # transformers' eager attention, as the old engine's baseline
    forward = MistralForward.from_hf(model)
    device = forward.device
    rows = []
    with torch.inference_mode():
        for batch in (int(b) for b in args.batches.split(",")):
            for context in (int(c) for c in args.contexts.split(",")):
                ids = torch.randint(
                    3, 32000, (batch, context), generator=torch.Generator().manual_seed(batch)
                )
                ours = PagedRows(forward, ids, room=args.steps + 2)
                theirs = HFRows(model, ids)
                ours_ms, hf_ms = _alternating(device, args.steps, ours.decode, theirs.decode)
                rows.append(
                    [
                        str(batch),
                        f"{context:,}",
                        fmt(hf_ms),
                        fmt(ours_ms),
                        fmt(batch * 1000 / hf_ms, 0),
                        fmt(batch * 1000 / ours_ms, 0),
                        f"{hf_ms / ours_ms:.2f}x",
                    ]
                )
                print("  " + " | ".join(rows[-1]), flush=True)
                del ours, theirs
    print()
    headers = [
        "batch",
        "context",
        "transformers ms",
        "ours ms",
        "transformers tok/s",
        "ours tok/s",
        "speed-up",
    ]
    print(format_table(headers, rows, markdown=args.markdown))


if __name__ == "__main__":
    main()
