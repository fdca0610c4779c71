"""The correctness half of bench/gpu.sh: our paged forward and the Triton kernel, checked on the device.

1. Our forward (`inference.mistral`) against transformers' `MistralForCausalLM`
   at the 7B shape (hidden 4096, 32/8 heads, head dim 128, vocab 32000) with
   random bf16 weights and a few layers: a batch of prompts of different
   lengths prefilled in chunks through the paged cache, then greedy decode
   steps. bf16 has no exact answer, so both bf16 models are measured against
   transformers in float32: ours passes when its mean error is within 1.5x of
   transformers' own bf16 error (+ 1e-3) and its top-1 tokens agree with the
   float32 model wherever transformers' bf16 ones do.
2. The Triton decode kernel against the torch reference at 7B attention
   shapes (bf16, batches 1/8/64, contexts 1 to 4k), with its time per call.

Prints the machine line, then one table; exits 1 if any check fails.
On a machine without a GPU, ``--cpu --tiny`` runs the same checks on the tiny
model, in float32, with the kernel in Triton's interpreter at small shapes:

    python3 bench/gpu_check.py                  # on the GPU machine (bench/gpu.sh)
    python3 bench/gpu_check.py --cpu --tiny     # here, to check the script itself
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu", action="store_true", help="run on the CPU, the kernel in Triton's interpreter"
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny model's shape instead of 7B's")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of the 7B-shape model")
    parser.add_argument("--decode-steps", type=int, default=16)
    parser.add_argument("--markdown", action="store_true")
    return parser.parse_args()


ARGS = _arguments() if __name__ == "__main__" else None
if ARGS is not None and ARGS.cpu:
    # Triton reads this when a kernel is defined: before `inference` is imported.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
from transformers import MistralForCausalLM  # noqa: E402

from bench.common import format_table, machine_description  # noqa: E402
from inference import triton_attention  # noqa: E402
from inference.attention import paged_decode_attention  # noqa: E402
from inference.forward_batch import ForwardBatch  # noqa: E402
from inference.mistral import MistralForward  # noqa: E402
from inference.paged_kv import PagedKV  # noqa: E402
from inference.tiny import mistral_7b_config, tiny_config  # noqa: E402

BLOCK_SIZE = 16


def _batch(
    chunks: list[list[int]], cached: list[int], tables: list[list[int]], device: torch.device
) -> ForwardBatch:
    """One step: row r's ``chunks[r]`` after ``cached[r]`` tokens, in blocks ``tables[r]``."""
    ids, positions, slots, starts = [], [], [0], []
    for chunk, done, table in zip(chunks, cached, tables, strict=True):
        for offset, token in enumerate(chunk):
            position = done + offset
            ids.append(token)
            positions.append(position)
            slots.append(table[position // BLOCK_SIZE] * BLOCK_SIZE + position % BLOCK_SIZE)
        starts.append(len(ids))
    lengths = [done + len(chunk) for chunk, done in zip(chunks, cached, strict=True)]

    def tensor(values: list[int], dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=device)

    return ForwardBatch(
        input_ids=tensor(ids, torch.long),
        positions=tensor(positions, torch.long),
        slot_mapping=tensor(slots[1:], torch.long),
        query_start=tensor([0, *starts], torch.int32),
        context_lens=tensor(lengths, torch.int32),
        block_tables=torch.tensor(tables, dtype=torch.int32, device=device),
        max_query_len=max(len(chunk) for chunk in chunks),
        max_context_len=max(lengths),
    )


def check_forward(device: torch.device, *, tiny: bool, layers: int, steps: int) -> list[list[str]]:
    """Rows of the table for our forward against transformers: chunked prefill, then greedy decode."""
    config = tiny_config() if tiny else mistral_7b_config()
    config.num_hidden_layers = config.num_hidden_layers if tiny else layers
    low = torch.float32 if device.type == "cpu" else torch.bfloat16
    torch.manual_seed(0)
    with torch.device(device):
        reference = MistralForCausalLM(config).float().eval()  # the float32 truth
    hf_low = copy.deepcopy(reference).to(low)
    ours = MistralForward.from_hf(hf_low)
    lengths = [5, 300, 1000] if tiny else [17, 700, 2048]
    prompts = [torch.randint(3, 32000, (n,)).tolist() for n in lengths]
    per_row = -(-(max(lengths) + steps) // BLOCK_SIZE)
    order = torch.randperm(per_row * len(prompts)).tolist()  # scattered blocks
    tables = [order[i * per_row : (i + 1) * per_row] for i in range(len(prompts))]
    kv = PagedKV.allocate(config, num_blocks=len(order), block_size=BLOCK_SIZE, dtype=low, device=device)
    # Prefill in chunks of 512 tokens a row (all rows together), as the scheduler would;
    # a row's logits are those of the step that holds its last prompt token.
    chunk, ours_last = 512, [torch.empty(0)] * len(prompts)
    for start in range(0, max(lengths), chunk):
        live = [r for r, n in enumerate(lengths) if start < n]
        batch = _batch(
            [prompts[r][start : start + chunk] for r in live],
            [start] * len(live),
            [tables[r] for r in live],
            device,
        )
        logits = ours(batch, kv)
        for index, row in enumerate(live):
            if lengths[row] <= start + chunk:
                ours_last[row] = logits[index]
    truth = [reference(torch.tensor([p], device=device)).logits[0, -1].float() for p in prompts]
    theirs = [hf_low(torch.tensor([p], device=device)).logits[0, -1].float() for p in prompts]
    rows = [
        _compare("prefill logits, chunks of 512", f"{len(prompts)} rows {lengths}", ours_last, theirs, truth)
    ]
    # Greedy decode through the chunk-prefilled cache, against transformers' own loop.
    tokens = [[int(t.argmax())] for t in ours_last]
    elapsed = []
    for step in range(steps - 1):
        batch = _batch([[t[-1]] for t in tokens], [n + step for n in lengths], tables, device)
        _sync(device)
        begin = time.perf_counter()
        logits = ours(batch, kv, check=False)
        _sync(device)
        elapsed.append(time.perf_counter() - begin)
        for row, values in enumerate(logits):
            tokens[row].append(int(values.argmax()))
    agree_hf = sum(_prefix(a, b) for a, b in zip(tokens, _greedy(hf_low, prompts, steps), strict=True))
    total = len(prompts) * steps
    if device.type == "cpu":  # float32: the same arithmetic, the same tokens
        rows.append(
            [
                "greedy decode",
                f"{len(prompts)} rows x {steps}",
                f"{agree_hf}/{total} equal",
                "all",
                _verdict(agree_hf == total),
            ]
        )
    else:  # bf16 on random weights: near-ties flip; show how far each bf16 model follows float32
        truth_tokens = _greedy(reference, prompts, steps)
        ours_fp32 = sum(_prefix(a, b) for a, b in zip(tokens, truth_tokens, strict=True))
        hf_fp32 = sum(
            _prefix(a, b) for a, b in zip(_greedy(hf_low, prompts, steps), truth_tokens, strict=True)
        )
        measured = (
            f"ours = transformers bf16: {agree_hf}/{total}; = fp32: ours {ours_fp32}, transformers {hf_fp32}"
        )
        rows.append(
            ["greedy decode, bf16", f"{len(prompts)} rows x {steps}", measured, "(leading tokens)", "info"]
        )
    median_ms = 1000 * sorted(elapsed)[len(elapsed) // 2]
    rows.append(
        [
            "decode step, eager",
            f"batch {len(prompts)}, {config.num_hidden_layers} layers",
            f"{median_ms:.2f} ms",
            "",
            "info",
        ]
    )
    return rows


def _greedy(model: MistralForCausalLM, prompts: list[list[int]], steps: int) -> list[list[int]]:
    device = next(model.parameters()).device
    return [
        model.generate(
            torch.tensor([p], device=device),
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            pad_token_id=0,
        )[0, len(p) :].tolist()
        for p in prompts
    ]


def _compare(
    name: str, shape: str, ours: list[torch.Tensor], theirs: list[torch.Tensor], truth: list[torch.Tensor]
) -> list[str]:
    ours_error = torch.stack([(o - t).abs().mean() for o, t in zip(ours, truth, strict=True)]).max().item()
    their_error = torch.stack([(h - t).abs().mean() for h, t in zip(theirs, truth, strict=True)]).max().item()
    top1 = all(
        int(o.argmax()) == int(t.argmax()) or int(h.argmax()) != int(t.argmax())
        for o, h, t in zip(ours, theirs, truth, strict=True)
    )
    bound = 1.5 * their_error + 1e-3
    return [
        name,
        shape,
        f"mean abs error vs fp32: ours {ours_error:.2e}, transformers {their_error:.2e}",
        f"<= {bound:.2e}, top-1 agrees",
        _verdict(ours_error <= bound and top1),
    ]


def check_kernel(device: torch.device, *, small: bool) -> list[list[str]]:
    """Rows for the Triton decode kernel against the torch reference, with each one's time per call."""
    if not triton_attention.available():
        return [["triton decode kernel", "-", "Triton is not installed", "", "FAIL"]]
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    heads, kv_heads, head_dim = (4, 2, 64) if small else (32, 8, 128)
    cases = [(1, 1), (2, 40), (3, 100)] if small else [(1, 1), (1, 2048), (8, 2047), (64, 2048), (1, 4096)]
    tolerance = 2e-5 if dtype == torch.float32 else 2e-2
    rows = []
    for batch, context in cases:
        generator = torch.Generator().manual_seed(batch * 10_000 + context)
        per_row = -(-context // BLOCK_SIZE)
        blocks = batch * per_row + 1
        k_cache = torch.randn(blocks, BLOCK_SIZE, kv_heads, head_dim, generator=generator).to(device, dtype)
        v_cache = torch.randn(blocks, BLOCK_SIZE, kv_heads, head_dim, generator=generator).to(device, dtype)
        q = torch.randn(batch, heads, head_dim, generator=generator).to(device, dtype)
        tables = torch.randperm(batch * per_row, generator=generator).view(batch, per_row).int().to(device)
        lens = torch.full((batch,), context, dtype=torch.int32, device=device)
        scale = head_dim**-0.5
        out = triton_attention.paged_decode_attention_triton(q, k_cache, v_cache, tables, lens, scale)
        expected = paged_decode_attention(q, k_cache, v_cache, tables, lens, scale)
        error = (out.float() - expected.float()).abs().max().item()
        timing = ""
        if device.type == "cuda":
            inputs = (q, k_cache, v_cache, tables, lens, scale)
            kernel_us = _time_us(triton_attention.paged_decode_attention_triton, inputs)
            torch_us = _time_us(paged_decode_attention, inputs)
            timing = f"; {kernel_us:.0f} us (torch {torch_us:.0f} us)"
        rows.append(
            [
                "triton decode kernel",
                f"B {batch}, ctx {context}, {heads}/{kv_heads}x{head_dim}, {str(dtype).removeprefix('torch.')}",
                f"max abs diff {error:.1e}{timing}",
                f"<= {tolerance:.0e}",
                _verdict(error <= tolerance and bool(torch.isfinite(out).all())),
            ]
        )
    return rows


def _time_us(attention: Callable[..., torch.Tensor], inputs: tuple[object, ...], repeats: int = 20) -> float:
    for _ in range(3):
        attention(*inputs)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        attention(*inputs)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e6 / repeats


def _prefix(ours: list[int], theirs: list[int]) -> int:
    """How many leading tokens agree (after the first disagreement, contexts differ)."""
    count = 0
    for a, b in zip(ours, theirs, strict=False):
        if a != b:
            break
        count += 1
    return count


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def main(args: argparse.Namespace) -> int:
    device = torch.device("cpu" if args.cpu else "cuda")
    print(machine_description(), flush=True)
    with torch.no_grad():
        rows = check_kernel(device, small=args.tiny or args.cpu)
        rows += check_forward(device, tiny=args.tiny, layers=args.layers, steps=args.decode_steps)
    print()
    print(format_table(["check", "shape", "measured", "bound", "result"], rows, markdown=args.markdown))
    return 1 if any(row[-1] == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    assert ARGS is not None
    sys.exit(main(ARGS))
