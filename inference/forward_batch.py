"""What one model step is given: the paged engine's contract between its scheduler and its model.

The scheduler (which rows run this step, which cache blocks they own) and
the model (our own Mistral forward over a paged KV cache) meet only here.
A step is flattened, with no padding: the new tokens of every row that
runs, one after another, each row's prefill chunk or its one decode token.
Every tensor lives on the model's device; the model never syncs with the
host to read them, so a decode step can be captured in a CUDA graph whose
static buffers are these tensors (padded to a batch-size bucket: padding
rows have ``query_lens == 0`` and write to ``PAD_SLOT``).

The physical cache (`PagedKV`) is one K and one V tensor per layer of shape
``[num_blocks, block_size, num_kv_heads, head_dim]``. A token at position
``p`` of a row lives in block ``block_tables[row, p // block_size]`` at
offset ``p % block_size``; its flat slot is ``block * block_size + offset``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# A slot no token is written to: padding rows of a captured decode step point here.
PAD_SLOT = -1


@dataclass
class ForwardBatch:
    """One step's rows, flattened: T new tokens in all, B rows."""

    input_ids: torch.Tensor  # [T] long: every row's new tokens, row after row
    positions: torch.Tensor  # [T] long: each token's position in its own sequence
    # [T] long: the flat cache slot each token's K/V is written to (PAD_SLOT: none)
    slot_mapping: torch.Tensor
    # [B + 1] int32: row r's tokens are input_ids[query_start[r]:query_start[r + 1]]
    query_start: torch.Tensor
    context_lens: torch.Tensor  # [B] int32: row r's length after this step (cached tokens + its new ones)
    block_tables: torch.Tensor  # [B, max_blocks] int32: each row's blocks in order, padded with 0
    # Host-side facts the scheduler knows anyway; the model may choose its path by
    # them but never reads the tensors above back to the host.
    max_query_len: int  # 1 for a pure decode step
    max_context_len: int

    @property
    def num_rows(self) -> int:
        return self.context_lens.shape[0]

    @property
    def is_decode(self) -> bool:
        return self.max_query_len == 1
