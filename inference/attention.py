"""Attention over the paged KV cache, in plain torch: the reference, and the CPU path.

Three operations, each on one layer's cache (``[blocks, block_size, kv_heads,
head_dim]``, see `inference.paged_kv`):

- `store_kv` writes a step's new K and V to their slots;
- `paged_decode_attention` attends one query per row to the row's cached
  tokens (a decode step); no host sync, so it can be captured in a CUDA graph;
- `prefill_attention` attends each row's new chunk to the row's whole cached
  prefix and causally within the chunk (prefix cache, chunked prefill).

GQA without repeating K and V: the ``H`` query heads are viewed as
``[kv_heads, H / kv_heads]`` and each group meets its one K/V head. On CUDA
the decode step goes through the Triton kernel (`inference.triton_attention`)
when Triton imports; this module is what it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def store_kv(
    k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slot_mapping: torch.Tensor
) -> None:
    """Write ``k``, ``v`` (``[T, kv_heads, head_dim]``) to the flat slots ``slot_mapping`` (``[T]``).

    ``PAD_SLOT`` (-1) indexes the flat cache's last slot, which lies in `PagedKV`'s
    scratch block: padding tokens land there instead of being filtered out, since
    filtering (a boolean mask, ``nonzero``) would sync with the host.
    """
    kv_heads, head_dim = k_cache.shape[-2:]
    k_cache.view(-1, kv_heads, head_dim)[slot_mapping] = k.to(k_cache.dtype)
    v_cache.view(-1, kv_heads, head_dim)[slot_mapping] = v.to(v_cache.dtype)


def blocks_needed(max_context_len: int, block_size: int, width: int) -> int:
    """Columns of a ``width``-wide block table that hold a step's first ``max_context_len`` positions."""
    return max(1, min(-(-max_context_len // block_size), width))


def token_rows(query_start: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """The row of each of the step's ``num_tokens`` tokens (``[T]`` long, on the device).

    Tokens past the last row's end (a padded captured step) get the last row; they
    only read its cache, and nothing reads their output.
    """
    tokens = torch.arange(num_tokens, device=query_start.device, dtype=query_start.dtype)
    rows = torch.searchsorted(query_start[1:].contiguous(), tokens, right=True)
    return rows.clamp_(max=query_start.shape[0] - 2)


def _gather_keys(cache: torch.Tensor, block_tables: torch.Tensor) -> torch.Tensor:
    """Each row's cached tokens in order: ``[rows, blocks * block_size, kv_heads, head_dim]``.

    `index_select` over whole blocks: on the CPU twice as fast as advanced indexing.
    """
    rows, blocks = block_tables.shape
    gathered = cache.index_select(0, block_tables.reshape(-1))
    return gathered.view(rows, blocks * cache.shape[1], *cache.shape[2:])


def paged_decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """One query per row (``q``: ``[B, H, D]``) over its first ``context_lens[b]`` cached tokens.

    Returns ``[B, H, D]`` in ``q``'s dtype; a row with ``context_lens == 0`` (padding)
    gets zeros. Reads every block of ``block_tables`` (pass only as many columns as
    the longest row needs), masking what lies past each row's length, in one
    `scaled_dot_product_attention` with ``enable_gqa``.
    """
    rows, heads, head_dim = q.shape
    keys = _gather_keys(k_cache, block_tables).transpose(1, 2).to(q.dtype)  # [B, KVH, L, D]
    values = _gather_keys(v_cache, block_tables).transpose(1, 2).to(q.dtype)
    positions = torch.arange(keys.shape[2], device=q.device)
    valid = positions[None, :] < context_lens[:, None]  # [B, L]
    # An empty row would softmax over nothing (NaN): let it see key 0, then zero it.
    empty = context_lens <= 0
    mask = valid | ((positions[None, :] == 0) & empty[:, None])
    out = F.scaled_dot_product_attention(
        q[:, :, None],  # [B, H, 1, D]
        keys,
        values,
        attn_mask=mask[:, None, None, :],
        scale=scale,
        enable_gqa=heads != keys.shape[1],
    )[:, :, 0]
    return out.masked_fill(empty[:, None, None], 0.0)


@dataclass(frozen=True)
class PrefillPlan:
    """What every layer's prefill attention of one step shares: built once, used per layer.

    Rows are padded to ``max_query_len`` queries and to the keys of their first
    ``max_context_len`` positions (host-side facts, so no sync); ``mask`` says
    which key each padded query sees: its row's cached positions up to its own.
    """

    row: torch.Tensor  # [T] long: each token's row
    column: torch.Tensor  # [T] long: its index among its row's new tokens
    tables: torch.Tensor  # [B, blocks]: the blocks holding the first max_context_len positions
    mask: torch.Tensor  # [B, 1, max_query_len, blocks * block_size] bool
    max_query_len: int

    @classmethod
    def build(
        cls,
        *,
        query_start: torch.Tensor,
        positions: torch.Tensor,
        block_tables: torch.Tensor,
        context_lens: torch.Tensor,
        max_query_len: int,
        max_context_len: int,
        block_size: int,
    ) -> PrefillPlan:
        tokens, rows = positions.shape[0], context_lens.shape[0]
        device = positions.device
        num_blocks = blocks_needed(max_context_len, block_size, block_tables.shape[1])
        row = token_rows(query_start, tokens).long()
        column = torch.arange(tokens, device=device) - query_start.long()[row]
        query_positions = torch.full((rows, max_query_len), -1, dtype=torch.long, device=device)
        query_positions[row, column] = positions.long()
        key_positions = torch.arange(num_blocks * block_size, device=device)
        mask = (key_positions[None, None, :] <= query_positions[:, :, None]) & (
            key_positions[None, None, :] < context_lens[:, None, None]
        )
        # A padding query sees nothing; let it see key 0 rather than have SDPA produce
        # NaN for an empty row (its output is dropped anyway).
        mask[..., 0] |= query_positions < 0
        return cls(
            row=row,
            column=column,
            tables=block_tables[:, :num_blocks],
            mask=mask[:, None],
            max_query_len=max_query_len,
        )

    def attend(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """``q``: ``[T, H, D]`` (the new tokens' K/V already stored); returns ``[T, H, D]``."""
        heads, head_dim = q.shape[1:]
        rows = self.tables.shape[0]
        keys = _gather_keys(k_cache, self.tables).to(q.dtype)  # [B, L, KVH, D]
        values = _gather_keys(v_cache, self.tables).to(q.dtype)
        padded = q.new_zeros(rows, self.max_query_len, heads, head_dim)
        padded[self.row, self.column] = q
        grouped = heads != keys.shape[2]
        if grouped and q.is_cuda:
            # SDPA's memory-efficient CUDA kernel takes a mask but not `enable_gqa` (torch
            # <= 2.11 falls back to the math kernel, [B, H, Q, L] scores in memory): repeat
            # K/V here instead, a copy of one layer's gathered prefix.
            keys = keys.repeat_interleave(heads // keys.shape[2], dim=2)
            values = values.repeat_interleave(heads // values.shape[2], dim=2)
            grouped = False
        out = F.scaled_dot_product_attention(
            padded.transpose(1, 2),  # [B, H, Q, D]
            keys.transpose(1, 2),  # [B, KVH, L, D]
            values.transpose(1, 2),
            attn_mask=self.mask,
            scale=scale,
            enable_gqa=grouped,
        )
        return out.transpose(1, 2)[self.row, self.column]


def prefill_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    *,
    query_start: torch.Tensor,
    positions: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    max_query_len: int,
    max_context_len: int,
    scale: float,
) -> torch.Tensor:
    """Every new token (``q``: ``[T, H, D]``, rows flattened) over its row's cache up to itself.

    The new tokens' K and V must already be stored. Token ``t`` of row ``r`` at
    position ``p`` attends to the row's cached positions ``0..p``: the prefix a
    previous step or the prefix cache left, and the chunk causally. One
    `scaled_dot_product_attention` over the rows padded as `PrefillPlan` says
    (the model builds the plan once a step). Returns ``[T, H, D]``.
    """
    plan = PrefillPlan.build(
        query_start=query_start,
        positions=positions,
        block_tables=block_tables,
        context_lens=context_lens,
        max_query_len=max_query_len,
        max_context_len=max_context_len,
        block_size=k_cache.shape[1],
    )
    return plan.attend(q, k_cache, v_cache, scale)
