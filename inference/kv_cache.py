"""The KV cache of a batch whose replies come and go between decode steps.

Rows are left-padded so that every row's newest token sits in the last
column: one decode step appends one column for all rows. A 2-D attention
mask hides the padding, and each row's position ids count only its real
tokens, so a reply computes the same attention in a batch as alone.
Joining pads the shorter side on the left; leaving drops rows and then the
leading columns that only padding still uses.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PretrainedConfig


class BatchCache:
    """A transformers `DynamicCache` plus the padding mask and true length of each row."""

    def __init__(self, hf_cache: DynamicCache) -> None:
        self.hf_cache = hf_cache
        self.mask = torch.zeros(0, 0, dtype=torch.long)  # [batch, columns]: 1 = a real token
        self.lengths = torch.zeros(0, dtype=torch.long)  # [batch]: real tokens per row

    @classmethod
    def empty(cls, config: PretrainedConfig) -> BatchCache:
        return cls(DynamicCache(config=config))

    @property
    def columns(self) -> int:
        return int(self.mask.shape[1])

    def extend(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Make room for one more token per row: the mask to pass, and each row's new position."""
        positions = self.lengths
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        self.lengths = self.lengths + 1
        return self.mask, positions

    def join(self, other: BatchCache) -> None:
        """Append ``other``'s rows after ours, padding the shorter on the left."""
        width = max(self.columns, other.columns)
        for mine, theirs in zip(self.hf_cache.layers, other.hf_cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)], dim=0)
            mine.values = torch.cat([_pad_left(mine.values, width), _pad_left(theirs.values, width)], dim=0)
        self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(other.mask, width)], dim=0)
        self.lengths = torch.cat([self.lengths, other.lengths])

    def select(self, index: torch.Tensor) -> None:
        """Keep only the rows in ``index`` and free what nobody uses any more."""
        self.hf_cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.lengths = self.lengths[index]
        used = self.mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else self.columns
        if first:
            for layer in self.hf_cache.layers:
                layer.keys = layer.keys[..., first:, :].contiguous()
                layer.values = layer.values[..., first:, :].contiguous()
            self.mask = self.mask[:, first:]


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Pad the sequence dimension (-2 for keys and values, -1 for a mask) on the left to ``width``."""
    seq_dim = -1 if tensor.dim() == 2 else -2
    missing = width - tensor.shape[seq_dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[seq_dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=seq_dim)
