"""The paged decode attention as a Triton kernel: the GPU's decode path.

Same contract as `inference.attention.paged_decode_attention` (its
reference): one query per row, ``[B, H, D]``, over the row's first
``context_lens[b]`` cached tokens, GQA without repeating K and V.

Split-K ("flash decoding", vLLM's paged attention v2): each program takes one
row, one KV head with its whole group of query heads, and one partition of
``PARTITION_BLOCKS`` blocks, with an online softmax over its blocks; a second
kernel merges the partitions' maxima, sums and partial outputs. So batch 1
at a long context still spreads over many programs. The grid and the
scratch buffers depend only on shapes (the block tables' static width), and
lengths are read on the device: no host sync, capturable in a CUDA graph.

Used on CUDA when Triton imports (`decode_kernel_for`); tested on the CPU
through Triton's interpreter (``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the CPU wheel of torch does not bring Triton
    triton = None
    tl = None

# Blocks one program reads: 16 blocks of 16 tokens is 256 tokens a program.
PARTITION_BLOCKS = 16


def available() -> bool:
    return triton is not None


def supports(head_dim: int, block_size: int) -> bool:
    """Whether the kernel takes these shapes: a power-of-two block size (>= 16) and head dim (>= 16)."""
    return (
        block_size >= 16
        and block_size & (block_size - 1) == 0
        and head_dim >= 16
        and head_dim & (head_dim - 1) == 0
    )


def decode_kernel_for(
    device: torch.device, head_dim: int, block_size: int
) -> Callable[..., torch.Tensor] | None:
    """The Triton decode attention for a CUDA cache of shapes it takes, else None (use torch's)."""
    if device.type == "cuda" and available() and supports(head_dim, block_size):
        return paged_decode_attention_triton
    return None


if triton is not None:

    @triton.jit
    def _partition_kernel(
        q_ptr,
        k_ptr,
        v_ptr,
        tables_ptr,
        lens_ptr,
        max_ptr,
        sum_ptr,
        part_ptr,
        scale,
        stride_qb,
        stride_qh,
        stride_cb,
        stride_cs,
        stride_ch,
        stride_tb,
        num_partitions,
        GROUP: tl.constexpr,
        BLOCK_G: tl.constexpr,
        HEAD_DIM: tl.constexpr,
        BLOCK_SIZE: tl.constexpr,
        PARTITION: tl.constexpr,
    ):
        row = tl.program_id(0)
        kv_head = tl.program_id(1)
        partition = tl.program_id(2)
        length = tl.load(lens_ptr + row)
        g = tl.arange(0, BLOCK_G)
        d = tl.arange(0, HEAD_DIM)
        s = tl.arange(0, BLOCK_SIZE)
        heads = kv_head * GROUP + g
        q = tl.load(
            q_ptr + row * stride_qb + heads[:, None] * stride_qh + d[None, :],
            mask=(g < GROUP)[:, None],
            other=0.0,
        ).to(tl.float32)
        q = q * scale
        running_max = tl.full([BLOCK_G], float("-inf"), dtype=tl.float32)
        running_sum = tl.zeros([BLOCK_G], dtype=tl.float32)
        acc = tl.zeros([BLOCK_G, HEAD_DIM], dtype=tl.float32)
        first = partition * PARTITION
        last = tl.minimum(first + PARTITION, tl.cdiv(length, BLOCK_SIZE))
        for index in range(first, last):
            block = tl.load(tables_ptr + row * stride_tb + index).to(tl.int64)
            positions = index * BLOCK_SIZE + s
            valid = positions < length
            offsets = block * stride_cb + s[:, None] * stride_cs + kv_head * stride_ch + d[None, :]
            k = tl.load(k_ptr + offsets, mask=valid[:, None], other=0.0).to(tl.float32)
            v = tl.load(v_ptr + offsets, mask=valid[:, None], other=0.0).to(tl.float32)
            scores = tl.sum(q[:, None, :] * k[None, :, :], axis=2)  # [BLOCK_G, BLOCK_SIZE]
            scores = tl.where(valid[None, :], scores, float("-inf"))
            new_max = tl.maximum(running_max, tl.max(scores, axis=1))
            probs = tl.exp(scores - new_max[:, None])
            correction = tl.exp(running_max - new_max)
            running_sum = running_sum * correction + tl.sum(probs, axis=1)
            acc = acc * correction[:, None] + tl.sum(probs[:, :, None] * v[None, :, :], axis=1)
            running_max = new_max
        # One slot per (row, head, partition); an empty partition leaves max -inf, sum 0.
        slot = (row * tl.num_programs(1) * GROUP + heads) * num_partitions + partition
        keep = g < GROUP
        tl.store(max_ptr + slot, running_max, mask=keep)
        tl.store(sum_ptr + slot, running_sum, mask=keep)
        tl.store(part_ptr + slot[:, None] * HEAD_DIM + d[None, :], acc, mask=keep[:, None])

    @triton.jit
    def _merge_kernel(
        max_ptr,
        sum_ptr,
        part_ptr,
        out_ptr,
        stride_ob,
        stride_oh,
        num_heads,
        num_partitions,
        HEAD_DIM: tl.constexpr,
        BLOCK_P: tl.constexpr,
    ):
        row = tl.program_id(0)
        head = tl.program_id(1)
        p = tl.arange(0, BLOCK_P)
        d = tl.arange(0, HEAD_DIM)
        base = (row * num_heads + head) * num_partitions
        present = p < num_partitions
        maxima = tl.load(max_ptr + base + p, mask=present, other=float("-inf"))
        sums = tl.load(sum_ptr + base + p, mask=present, other=0.0)
        parts = tl.load(
            part_ptr + (base + p)[:, None] * HEAD_DIM + d[None, :], mask=present[:, None], other=0.0
        )
        overall = tl.max(maxima, axis=0)
        # A row of length 0 has every max at -inf: subtract 0 instead (exp(-inf) weighs 0,
        # no inf - inf) and divide by 1 below, giving zeros.
        overall = tl.where(overall > float("-inf"), overall, 0.0)
        weights = tl.exp(maxima - overall)
        total = tl.sum(sums * weights, axis=0)
        out = tl.sum(parts * weights[:, None], axis=0) / tl.where(total > 0, total, 1.0)
        tl.store(out_ptr + row * stride_ob + head * stride_oh + d, out.to(out_ptr.dtype.element_ty))


def paged_decode_attention_triton(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    *,
    partition_blocks: int = PARTITION_BLOCKS,
) -> torch.Tensor:
    """`inference.attention.paged_decode_attention`, in two Triton kernels. ``[B, H, D]`` out."""
    if triton is None:
        raise RuntimeError("Triton is not installed")
    rows, heads, head_dim = q.shape
    _, block_size, kv_heads, cache_head_dim = k_cache.shape
    if cache_head_dim != head_dim or heads % kv_heads or not supports(head_dim, block_size):
        raise ValueError(f"unsupported shapes: q {tuple(q.shape)}, cache {tuple(k_cache.shape)}")
    if k_cache.stride() != v_cache.stride() or k_cache.stride(-1) != 1 or q.stride(-1) != 1:
        raise ValueError("the K and V caches must share one layout, contiguous in head_dim")
    group = heads // kv_heads
    partitions = max(1, -(-block_tables.shape[1] // partition_blocks))
    stats = torch.empty(2, rows, heads, partitions, dtype=torch.float32, device=q.device)
    parts = torch.empty(rows, heads, partitions, head_dim, dtype=torch.float32, device=q.device)
    out = torch.empty_like(q)
    _partition_kernel[(rows, kv_heads, partitions)](
        q,
        k_cache,
        v_cache,
        block_tables,
        context_lens,
        stats[0],
        stats[1],
        parts,
        scale,
        q.stride(0),
        q.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        block_tables.stride(0),
        partitions,
        GROUP=group,
        BLOCK_G=triton.next_power_of_2(group),
        HEAD_DIM=head_dim,
        BLOCK_SIZE=block_size,
        PARTITION=partition_blocks,
    )
    _merge_kernel[(rows, heads)](
        stats[0],
        stats[1],
        parts,
        out,
        out.stride(0),
        out.stride(1),
        heads,
        partitions,
        HEAD_DIM=head_dim,
        BLOCK_P=triton.next_power_of_2(partitions),
    )
    return out
