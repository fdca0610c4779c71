"""The torch attention over the paged cache, against a naive per-row softmax over contiguous K/V."""

from __future__ import annotations

import pytest
import torch

from inference.attention import PrefillPlan, paged_decode_attention, prefill_attention, store_kv, token_rows
from inference.forward_batch import PAD_SLOT


def naive(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Queries ``[Q, H, D]`` at ``positions`` over one row's contiguous ``keys`` ``[L, KVH, D]``,
    KV heads repeated, softmax written out, causal by position."""
    group = q.shape[1] // keys.shape[1]
    keys, values = keys.repeat_interleave(group, dim=1), values.repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,lhd->hql", q.double(), keys.double()) / q.shape[-1] ** 0.5
    allowed = torch.arange(keys.shape[0])[None, :] <= positions[:, None]
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("hql,lhd->qhd", scores.softmax(-1), values.double()).float()


def scattered_cache(
    lengths: list[int], *, block_size: int, kv_heads: int, head_dim: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """A cache whose rows own shuffled blocks, filled with random K/V; also each row's K/V in order."""
    generator = torch.Generator().manual_seed(seed)
    per_row = [-(-n // block_size) for n in lengths]
    total = sum(per_row) + 3  # spare blocks nobody owns, filled too
    order = torch.randperm(total, generator=generator).tolist()
    k_cache = torch.randn(total, block_size, kv_heads, head_dim, generator=generator)
    v_cache = torch.randn(total, block_size, kv_heads, head_dim, generator=generator)
    width = max(per_row)
    tables, row_keys, row_values, used = [], [], [], 0
    for n, count in zip(lengths, per_row, strict=True):
        blocks = order[used : used + count]
        used += count
        tables.append(blocks + [0] * (width - count))
        row_keys.append(k_cache[blocks].reshape(-1, kv_heads, head_dim)[:n])
        row_values.append(v_cache[blocks].reshape(-1, kv_heads, head_dim)[:n])
    return k_cache, v_cache, torch.tensor(tables, dtype=torch.int32), row_keys, row_values


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 4), (4, 2), (8, 1)])
@pytest.mark.parametrize("block_size", [1, 4, 16])
def test_decode_matches_the_naive_softmax(heads: int, kv_heads: int, block_size: int) -> None:
    lengths = [1, 5, 16, 17, 33]
    k_cache, v_cache, tables, keys, values = scattered_cache(
        lengths, block_size=block_size, kv_heads=kv_heads, head_dim=8, seed=block_size
    )
    q = torch.randn(len(lengths), heads, 8, generator=torch.Generator().manual_seed(1))
    out = paged_decode_attention(q, k_cache, v_cache, tables, torch.tensor(lengths), 8**-0.5)
    for row, n in enumerate(lengths):
        expected = naive(q[row : row + 1], keys[row], values[row], torch.tensor([n - 1]))
        torch.testing.assert_close(out[row : row + 1], expected, atol=1e-5, rtol=1e-5)


def test_decode_gives_zeros_for_an_empty_row_and_no_nan() -> None:
    k_cache, v_cache, tables, _, _ = scattered_cache([4, 4], block_size=4, kv_heads=2, head_dim=8, seed=0)
    q = torch.randn(2, 4, 8)
    out = paged_decode_attention(q, k_cache, v_cache, tables, torch.tensor([4, 0]), 0.3)
    assert torch.isfinite(out).all() and not out[1].any()


def test_decode_keeps_the_query_dtype() -> None:
    k_cache, v_cache, tables, _, _ = scattered_cache([5], block_size=4, kv_heads=1, head_dim=8, seed=0)
    bf16 = paged_decode_attention(
        torch.randn(1, 2, 8).bfloat16(),
        k_cache.bfloat16(),
        v_cache.bfloat16(),
        tables,
        torch.tensor([5]),
        0.3,
    )
    assert bf16.dtype == torch.bfloat16


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 4), (4, 2)])
def test_prefill_attends_to_the_cached_prefix_and_causally_within_the_chunk(
    heads: int, kv_heads: int
) -> None:
    # Row 0: 6 cached + 5 new; row 1: a fresh prompt of 9; row 2: 12 cached + 1 new.
    cached, new = [6, 0, 12], [5, 9, 1]
    lengths = [c + n for c, n in zip(cached, new, strict=True)]
    k_cache, v_cache, tables, keys, values = scattered_cache(
        lengths, block_size=4, kv_heads=kv_heads, head_dim=8, seed=5
    )
    query_start = torch.tensor([0, 5, 14, 15], dtype=torch.int32)
    positions = torch.cat([torch.arange(c, c + n) for c, n in zip(cached, new, strict=True)])
    q = torch.randn(15, heads, 8, generator=torch.Generator().manual_seed(2))
    out = prefill_attention(
        q,
        k_cache,
        v_cache,
        query_start=query_start,
        positions=positions,
        block_tables=tables,
        context_lens=torch.tensor(lengths, dtype=torch.int32),
        scale=8**-0.5,
    )
    for row in range(3):
        start, end = int(query_start[row]), int(query_start[row + 1])
        expected = naive(q[start:end], keys[row], values[row], positions[start:end])
        torch.testing.assert_close(out[start:end], expected, atol=1e-5, rtol=1e-5)


def test_store_kv_writes_each_slot_and_sends_padding_to_the_last_slot() -> None:
    k_cache, v_cache = torch.zeros(4, 2, 1, 3), torch.zeros(4, 2, 1, 3)  # 3 blocks + scratch
    k = torch.arange(9.0).view(3, 1, 3) + 1
    store_kv(k_cache, v_cache, k, -k, torch.tensor([5, PAD_SLOT, 0]))
    assert torch.equal(k_cache[2, 1, 0], k[0, 0]) and torch.equal(v_cache[2, 1, 0], -k[0, 0])
    assert torch.equal(k_cache[0, 0, 0], k[2, 0])
    assert torch.equal(k_cache[3, 1, 0], k[1, 0])  # the scratch block's last slot
    assert int((k_cache != 0).any(-1).sum()) == 3


def test_token_rows_maps_tokens_to_rows_including_empty_and_padding() -> None:
    query_start = torch.tensor([0, 2, 2, 5, 5], dtype=torch.int32)  # rows of 2, 0, 3, 0 tokens
    assert token_rows(query_start, 7).tolist() == [0, 0, 2, 2, 2, 3, 3]


def test_prefill_gives_zeros_to_padding_and_leaves_other_rows_alone() -> None:
    # Row 0: 3 new tokens after 2 cached; row 1: none (padding); then one unowned token.
    k_cache, v_cache, tables, keys, values = scattered_cache(
        [5, 1], block_size=4, kv_heads=2, head_dim=8, seed=6
    )
    q = torch.randn(4, 4, 8, generator=torch.Generator().manual_seed(3))
    out = prefill_attention(
        q,
        k_cache,
        v_cache,
        query_start=torch.tensor([0, 3, 3], dtype=torch.int32),
        positions=torch.tensor([2, 3, 4, 0]),
        block_tables=tables,
        context_lens=torch.tensor([5, 0], dtype=torch.int32),
        scale=8**-0.5,
    )
    torch.testing.assert_close(out[:3], naive(q[:3], keys[0], values[0], torch.tensor([2, 3, 4])))
    assert not out[3].any()


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 4), (4, 2)])
def test_prefill_of_fresh_prompts_of_one_length_is_plain_causal(heads: int, kv_heads: int) -> None:
    k_cache, v_cache, tables, keys, values = scattered_cache(
        [6, 6, 6], block_size=4, kv_heads=kv_heads, head_dim=8, seed=7
    )
    q = torch.randn(18, heads, 8, generator=torch.Generator().manual_seed(4))
    query_start = torch.tensor([0, 6, 12, 18], dtype=torch.int32)
    plan = PrefillPlan.build(
        query_start=query_start,
        positions=torch.arange(6).repeat(3),
        block_tables=tables,
        context_lens=torch.tensor([6, 6, 6], dtype=torch.int32),
        block_size=4,
    )
    assert plan.fresh  # the maskless path is the one under test
    out = plan.attend(q, k_cache, v_cache, 8**-0.5)
    for row in range(3):
        start = row * 6
        expected = naive(q[start : start + 6], keys[row], values[row], torch.arange(6))
        torch.testing.assert_close(out[start : start + 6], expected, atol=1e-5, rtol=1e-5)
