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
from transformers.cache_utils import DynamicLayer

# Spare columns a layer reserves when it must reallocate, at the least.
MIN_SPARE_COLUMNS = 64


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` that appends into spare capacity instead of concatenating.

    transformers' own layer copies the whole cache on every step (`torch.cat`);
    this one writes the new column in place and reallocates, doubling, only
    when full. After a join or a trim replaced `keys`/`values` with a new
    tensor, the next update rebuilds the buffers from it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states[..., :0, :], value_states[..., :0, :]
        used, new = self.keys.shape[-2], key_states.shape[-2]
        if not self._owns_current(used + new):
            self._key_buffer = _with_room(self.keys, used + new)
            self._value_buffer = _with_room(self.values, used + new)
        assert self._key_buffer is not None and self._value_buffer is not None
        self._key_buffer[..., used : used + new, :] = key_states
        self._value_buffer[..., used : used + new, :] = value_states
        self.keys = self._key_buffer[..., : used + new, :]
        self.values = self._value_buffer[..., : used + new, :]
        return self.keys, self.values

    def _owns_current(self, needed: int) -> bool:
        """Whether `keys` is still the start of our buffer, with room for `needed` columns."""
        buffer = self._key_buffer
        return (
            buffer is not None
            and self.keys.data_ptr() == buffer.data_ptr()
            and self.keys.shape[0] == buffer.shape[0]
            and buffer.shape[-2] >= needed
        )


def _with_room(current: torch.Tensor, needed: int) -> torch.Tensor:
    shape = list(current.shape)
    shape[-2] = max(2 * needed, needed + MIN_SPARE_COLUMNS)
    buffer = current.new_empty(shape)
    buffer[..., : current.shape[-2], :] = current
    return buffer


class BatchCache:
    """A transformers `DynamicCache` plus the padding mask and true length of each row."""

    def __init__(self, hf_cache: DynamicCache) -> None:
        self.hf_cache = hf_cache
        self.mask = torch.zeros(0, 0, dtype=torch.long)  # [batch, columns]: 1 = a real token
        self.lengths = torch.zeros(0, dtype=torch.long)  # [batch]: real tokens per row

    @classmethod
    def empty(cls, config: PretrainedConfig) -> BatchCache:
        cache = DynamicCache(config=config)
        cache.layers = [GrowingLayer() for _ in cache.layers]
        return cls(cache)

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
