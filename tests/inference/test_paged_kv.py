"""The paged KV cache: its layout, its size arithmetic, and refusals of nonsense."""

from __future__ import annotations

import pytest
import torch

from inference.paged_kv import PagedKV, blocks_for_memory, bytes_per_block
from inference.tiny import mistral_7b_config, tiny_config


def test_allocate_lays_out_every_layer_with_one_scratch_block() -> None:
    kv = PagedKV.allocate(tiny_config(), num_blocks=5, block_size=16, dtype=torch.bfloat16, device="cpu")
    assert kv.num_layers == 2 and len(kv.values) == 2
    for tensor in kv.keys + kv.values:
        assert tensor.shape == (6, 16, 2, 32) and tensor.dtype == torch.bfloat16
        assert not tensor.any()
    assert kv.scratch_block == 5 and kv.num_slots == 80
    assert kv.nbytes() == 6 * bytes_per_block(tiny_config(), 16, torch.bfloat16)
    assert kv.keys[0].data_ptr() != kv.keys[1].data_ptr() != kv.values[0].data_ptr()


def test_bytes_per_block_of_the_7b_model() -> None:
    # 32 layers x K and V x 16 tokens x 8 heads x 128 dims x 2 bytes = 2 MiB.
    assert bytes_per_block(mistral_7b_config(), 16, torch.bfloat16) == 2 * 1024 * 1024


def test_blocks_for_memory_leaves_room_for_the_scratch_block() -> None:
    config = mistral_7b_config()
    assert blocks_for_memory(config, budget_bytes=40 * 2**30, block_size=16, dtype=torch.bfloat16) == 20479
    assert blocks_for_memory(config, budget_bytes=4 * 2**20, block_size=16, dtype=torch.bfloat16) == 1


@pytest.mark.parametrize("budget", [0, 2**20, 4 * 2**20 - 1, -5])
def test_a_budget_without_room_for_one_block_is_refused(budget: int) -> None:
    with pytest.raises(ValueError, match="holds no block.*KV_CACHE_GB"):
        blocks_for_memory(mistral_7b_config(), budget_bytes=budget, block_size=16, dtype=torch.bfloat16)


@pytest.mark.parametrize(
    ("num_blocks", "block_size", "dtype", "message"),
    [
        (0, 16, torch.float32, "num_blocks"),
        (-1, 16, torch.float32, "num_blocks"),
        (2.5, 16, torch.float32, "num_blocks"),
        (True, 16, torch.float32, "num_blocks"),
        (4, 0, torch.float32, "block_size"),
        (4, "16", torch.float32, "block_size"),
        (4, 16, torch.int8, "floating-point"),
    ],
)
def test_nonsense_is_refused(
    num_blocks: object, block_size: object, dtype: torch.dtype, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PagedKV.allocate(
            tiny_config(),
            num_blocks=num_blocks,  # type: ignore[arg-type]
            block_size=block_size,  # type: ignore[arg-type]
            dtype=dtype,
            device="cpu",
        )
