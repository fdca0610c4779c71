"""The batch KV cache: in-place growth, left-padded joins, dropping rows and dead columns."""

from __future__ import annotations

import torch

from inference.kv_cache import BatchCache, GrowingLayer
from inference.tiny import tiny_config


def kv(batch: int, columns: int, fill: float | None = None) -> torch.Tensor:
    if fill is not None:
        return torch.full((batch, 2, columns, 4), fill)
    return torch.randn(batch, 2, columns, 4)


def test_growing_layer_equals_concatenation_and_reuses_its_buffer() -> None:
    layer = GrowingLayer()
    parts = [kv(3, 5), *[kv(3, 1) for _ in range(40)]]
    pointers = set()
    for part in parts:
        keys, values = layer.update(part, part * 2)
        pointers.add(keys.data_ptr())
    expected = torch.cat(parts, dim=-2)
    assert torch.equal(layer.keys, expected) and torch.equal(layer.values, expected * 2)
    assert layer.get_seq_length() == 45
    # 45 columns from a first allocation of 5 * 2 + spare: a couple of reallocations, not 41.
    assert len(pointers) <= 2


def test_growing_layer_rebuilds_after_its_tensor_was_replaced() -> None:
    layer = GrowingLayer()
    layer.update(kv(2, 3), kv(2, 3))
    layer.keys, layer.values = layer.keys[[1]], layer.values[[1]]  # as a row selection does
    kept = layer.keys.clone()
    step = kv(1, 1)
    keys, _ = layer.update(step, step)
    assert torch.equal(keys, torch.cat([kept, step], dim=-2))


def one_layer_cache(rows: list[tuple[int, float]]) -> BatchCache:
    """A cache whose rows hold `length` real columns filled with `value`, left-padded."""
    width = max(length for length, _ in rows)
    cache = BatchCache.empty(tiny_config())
    keys = torch.zeros(len(rows), 2, width, 4)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for row, (length, value) in enumerate(rows):
        keys[row, :, width - length :] = value
        mask[row, width - length :] = 1
    for layer in cache.hf_cache.layers:
        layer.update(keys, keys.clone())
    cache.mask, cache.lengths = mask, mask.sum(-1)
    return cache


def test_join_pads_the_shorter_side_on_the_left() -> None:
    cache = one_layer_cache([(2, 1.0)])
    cache.join(one_layer_cache([(5, 2.0), (3, 3.0)]))
    assert cache.mask.tolist() == [[0, 0, 0, 1, 1], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert cache.lengths.tolist() == [2, 5, 3]
    keys = cache.hf_cache.layers[0].keys
    assert keys.shape == (3, 2, 5, 4)
    assert torch.equal(keys[0, 0, :, 0], torch.tensor([0.0, 0, 0, 1, 1]))


def test_select_drops_rows_and_the_columns_only_they_used() -> None:
    cache = one_layer_cache([(6, 1.0), (2, 2.0), (3, 3.0)])
    cache.select(torch.tensor([1, 2]))
    assert cache.mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert cache.lengths.tolist() == [2, 3]
    for layer in cache.hf_cache.layers:
        assert layer.keys.shape == (2, 2, 3, 4)
        assert torch.equal(layer.keys[1, 0, :, 0], torch.tensor([3.0, 3, 3]))


def test_extend_adds_a_column_and_gives_each_row_its_own_position() -> None:
    cache = one_layer_cache([(4, 1.0), (1, 2.0)])
    mask, positions = cache.extend()
    assert positions.tolist() == [4, 1]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert cache.lengths.tolist() == [5, 2]
