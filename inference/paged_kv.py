"""The paged KV cache: one K and one V tensor per layer, cut into fixed-size blocks.

Each layer's K (and V) is ``[num_blocks + 1, block_size, num_kv_heads, head_dim]``
(the layout `inference.forward_batch` describes). Blocks ``0 .. num_blocks - 1``
belong to whoever the block manager gives them to; the one extra block at the
end is scratch: a token whose slot is ``PAD_SLOT`` (-1) is written to the last
slot of the flat cache, which is in that block, so a captured decode step can
write its padding rows without a branch or a host sync, and no real token is
ever overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PretrainedConfig


def kv_shape(config: PretrainedConfig) -> tuple[int, int, int]:
    """(layers, KV heads, head dim) of a Mistral-style config."""
    heads = int(config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // heads
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    return int(config.num_hidden_layers), kv_heads, int(head_dim)


def _check_block_size(block_size: int) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, not {block_size!r}")


def bytes_per_block(config: PretrainedConfig, block_size: int, dtype: torch.dtype) -> int:
    """What one block costs across all layers, K and V."""
    _check_block_size(block_size)
    layers, kv_heads, head_dim = kv_shape(config)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return 2 * layers * block_size * kv_heads * head_dim * itemsize


def blocks_for_memory(
    config: PretrainedConfig, *, budget_bytes: int, block_size: int, dtype: torch.dtype
) -> int:
    """How many usable blocks fit in ``budget_bytes`` (the scratch block included in the budget)."""
    per_block = bytes_per_block(config, block_size, dtype)
    blocks = int(budget_bytes) // per_block - 1  # one block is scratch
    if blocks < 1:
        raise ValueError(
            f"a KV cache budget of {int(budget_bytes):,} bytes holds no block: one block of "
            f"{block_size} tokens costs {per_block:,} bytes (plus one scratch block); raise KV_CACHE_GB"
        )
    return blocks


@dataclass
class PagedKV:
    """Every layer's K and V blocks; ``num_blocks`` usable ones plus one scratch block."""

    keys: list[torch.Tensor]  # per layer: [num_blocks + 1, block_size, kv_heads, head_dim]
    values: list[torch.Tensor]
    num_blocks: int
    block_size: int

    @classmethod
    def allocate(
        cls,
        config: PretrainedConfig,
        *,
        num_blocks: int,
        block_size: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> PagedKV:
        """Zeroed blocks for every layer of ``config``'s model."""
        _check_block_size(block_size)
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive integer, not {num_blocks!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"the KV cache needs a floating-point dtype, not {dtype}")
        layers, kv_heads, head_dim = kv_shape(config)
        shape = (num_blocks + 1, block_size, kv_heads, head_dim)
        # Zeroed, not empty: the scratch block and unused blocks are read (then masked)
        # by attention; garbage there could be NaN, and NaN * 0 is NaN.
        keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        return cls(keys=keys, values=values, num_blocks=num_blocks, block_size=block_size)

    @property
    def num_layers(self) -> int:
        return len(self.keys)

    @property
    def scratch_block(self) -> int:
        """The block ``PAD_SLOT`` writes land in; never handed to a request."""
        return self.num_blocks

    @property
    def num_slots(self) -> int:
        """Usable token slots: ``num_blocks * block_size``."""
        return self.num_blocks * self.block_size

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keys[index], self.values[index]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))
