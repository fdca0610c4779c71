"""The Triton paged-decode kernel against the torch reference, on random inputs of many shapes.

Without a GPU it runs in Triton's interpreter (``TRITON_INTERPRET=1``, set by
the root conftest before anything defines a kernel); shapes stay small, as the
interpreter is slow. The output is poisoned with NaN first, so a slot the
kernel forgets to write fails the comparison.
"""

from __future__ import annotations

import os

import pytest
import torch

from inference import triton_attention
from inference.attention import paged_decode_attention

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cpu" if INTERPRETED else "cuda"

pytestmark = [
    pytest.mark.skipif(not triton_attention.available(), reason="Triton is not installed"),
    # A GPU device node but a CPU build of torch: neither compiled nor interpreted kernels can run.
    pytest.mark.skipif(not INTERPRETED and not torch.cuda.is_available(), reason="no CUDA, no interpreter"),
]


def random_case(
    lengths: list[int], *, heads: int, kv_heads: int, head_dim: int, block_size: int, width: int, seed: int
) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    needed = sum(-(-n // block_size) for n in lengths)
    blocks = needed + 2
    order = torch.randperm(blocks, generator=generator).tolist()
    tables, used = [], 0
    for n in lengths:
        count = -(-n // block_size)
        tables.append(order[used : used + count] + [0] * (width - count))
        used += count
    k_cache = torch.randn(blocks, block_size, kv_heads, head_dim, generator=generator)
    v_cache = torch.randn(blocks, block_size, kv_heads, head_dim, generator=generator)
    q = torch.randn(len(lengths), heads, head_dim, generator=generator)
    tensors = (q, k_cache, v_cache, torch.tensor(tables, dtype=torch.int32), torch.tensor(lengths))
    return tuple(t.to(DEVICE) for t in tensors)


def poisoned_run(*args: object, **kwargs: object) -> torch.Tensor:
    """The kernel's output, its buffers (output and partial results) all full of NaN to start with."""
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def nan_empty(*shape: object, **options: object) -> torch.Tensor:
        return real_empty(*shape, **options).fill_(float("nan"))  # type: ignore[call-overload]

    def nan_like(tensor: torch.Tensor, **options: object) -> torch.Tensor:
        return real_empty_like(tensor, **options).fill_(float("nan"))  # type: ignore[arg-type]

    torch.empty, torch.empty_like = nan_empty, nan_like  # type: ignore[assignment]
    try:
        return triton_attention.paged_decode_attention_triton(*args, **kwargs)  # type: ignore[arg-type]
    finally:
        torch.empty, torch.empty_like = real_empty, real_empty_like  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("heads", "kv_heads", "head_dim", "block_size", "lengths", "partition"),
    [
        (4, 1, 64, 16, [1, 16, 17, 40], 2),  # GQA 4, lengths 1 and across block ends
        (8, 2, 128, 16, [33, 1], 1),  # head dim 128, one block per partition
        (2, 2, 64, 32, [64, 31, 5], 16),  # no GQA, block 32, one partition
        (6, 2, 64, 16, [48, 20], 2),  # a group of 3 (padded to 4 in the kernel)
        (8, 2, 128, 16, [1, 2, 15, 16, 17, 31, 32, 33], 2),  # 7B's GQA 4 and head dim 128, many lengths
        (4, 4, 128, 64, [100, 64, 65], 1),  # block 64
        (32, 8, 64, 16, [70], 4),  # batch 1, partitions partly empty
        (1, 1, 64, 16, [1], 16),  # the smallest case
    ],
)
def test_kernel_matches_the_torch_reference(
    heads: int, kv_heads: int, head_dim: int, block_size: int, lengths: list[int], partition: int
) -> None:
    width = max(-(-n // block_size) for n in lengths) + 1  # a wider table than needed
    q, k_cache, v_cache, tables, lens = random_case(
        lengths,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        block_size=block_size,
        width=width,
        seed=heads * head_dim + block_size,
    )
    scale = head_dim**-0.5
    out = poisoned_run(q, k_cache, v_cache, tables, lens, scale, partition_blocks=partition)
    expected = paged_decode_attention(q, k_cache, v_cache, tables, lens, scale)
    assert out.shape == expected.shape and out.dtype == q.dtype
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-5)


def test_a_query_sliced_from_the_fused_qkv_is_read_by_its_strides() -> None:
    # The forward hands the kernel q = qk[:, :heads]: rows lie (heads + kv_heads) * D apart.
    q, k_cache, v_cache, tables, lens = random_case(
        [17, 3], heads=4, kv_heads=2, head_dim=64, block_size=16, width=2, seed=5
    )
    fused = torch.cat([q, torch.randn(2, 2, 64, device=q.device)], dim=1)
    sliced = fused[:, :4]
    assert not sliced.is_contiguous()
    out = poisoned_run(sliced, k_cache, v_cache, tables, lens, 0.125)
    torch.testing.assert_close(out, paged_decode_attention(q, k_cache, v_cache, tables, lens, 0.125))


def test_an_empty_row_gives_zeros_not_nan() -> None:
    q, k_cache, v_cache, tables, lens = random_case(
        [5, 1], heads=2, kv_heads=1, head_dim=64, block_size=16, width=2, seed=3
    )
    lens[1] = 0
    out = poisoned_run(q, k_cache, v_cache, tables, lens, 0.125, partition_blocks=1)
    assert torch.isfinite(out).all() and not out[1].any()
    torch.testing.assert_close(out, paged_decode_attention(q, k_cache, v_cache, tables, lens, 0.125))


def test_bfloat16_matches_within_bfloat16_rounding() -> None:
    q, k_cache, v_cache, tables, lens = random_case(
        [20, 3], heads=4, kv_heads=2, head_dim=64, block_size=16, width=2, seed=4
    )
    q, k_cache, v_cache = q.bfloat16(), k_cache.bfloat16(), v_cache.bfloat16()
    out = poisoned_run(q, k_cache, v_cache, tables, lens, 0.125)
    assert out.dtype == torch.bfloat16
    expected = paged_decode_attention(q, k_cache, v_cache, tables, lens, 0.125)
    torch.testing.assert_close(out.float(), expected.float(), atol=2e-2, rtol=2e-2)


def test_shapes_it_cannot_take_are_refused_or_routed_to_torch() -> None:
    q = torch.randn(1, 4, 64)
    assert not triton_attention.supports(64, 8) and not triton_attention.supports(64, 24)
    assert not triton_attention.supports(48, 16) and triton_attention.supports(128, 16)
    assert triton_attention.decode_kernel_for(torch.device("cpu"), 64, 16) is None  # the torch path
    k_cache = torch.zeros(2, 8, 1, 64)
    with pytest.raises(ValueError, match="unsupported shapes"):
        triton_attention.paged_decode_attention_triton(
            q, k_cache, k_cache, torch.zeros(1, 1, dtype=torch.int32), torch.ones(1), 1.0
        )
