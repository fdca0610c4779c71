"""Attention over the paged KV cache, in plain torch: the reference, and the CPU path.

Three operations, each on one layer's cache (``[blocks, block_size, kv_heads,
head_dim]``, see `inference.paged_kv`):

- `store_kv` writes a step's new K and V to their slots;
- `paged_decode_attention` attends one query per row to the row's cached
  tokens (a decode step); no host sync, so it can be captured in a CUDA graph;
- `prefill_attention` (through `PrefillPlan`, which the model builds once a
  step) attends each row's new chunk to the row's whole cached prefix and
  causally within the chunk (prefix cache, chunked prefill).

GQA without repeating K and V: `scaled_dot_product_attention`'s
``enable_gqa`` meets each group of ``H / kv_heads`` query heads with its one
K/V head (on CUDA the masked chunk path repeats K/V instead, see
`PrefillPlan`). On CUDA the decode attention is the Triton kernel
(`inference.triton_attention`) when Triton imports; this module is what it
is tested against.
"""

from __future__ import annotations

from collections.abc import Callable
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


# `paged_decode_attention`'s signature: (q, k_cache, v_cache, block_tables, context_lens, scale).
DecodeAttention = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor
]


def _on(device: torch.device, values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long, device=device)


@dataclass(frozen=True)
class PrefillPlan:
    """What every layer's attention of a step with a prefill shares: built once, used per layer.

    The step's rows are split by their number of new tokens. Rows with one (rows
    decoding alongside a prompt's chunk) go through ``decode``, as in a decode
    step. Rows with more (prompt chunks) are padded to the longest chunk and to
    the longest context among them only, and meet in one
    `scaled_dot_product_attention`, where ``mask`` lets each query see its row's
    cached positions up to its own. So 64 decoding rows beside one 512-token
    chunk cost 64 decode queries, not 64 x 512 padded ones. Built from host
    copies of ``query_start`` and ``context_lens``: one sync a prefill step
    (never in a decode step, which does not come here). Rows with no token and
    tokens past the last row (padding) get zeros.
    """

    decode: DecodeAttention
    single_tokens: torch.Tensor  # [S]: the token of each one-token row
    single_tables: torch.Tensor  # [S, blocks]
    single_lengths: torch.Tensor  # [S]
    chunk_tokens: torch.Tensor  # [C]: the chunk rows' tokens, row after row
    chunk_row: torch.Tensor  # [C]: each one's index among the chunk rows
    chunk_column: torch.Tensor  # [C]: its index among its row's new tokens
    chunk_tables: torch.Tensor  # [R, blocks]
    mask: torch.Tensor  # [R, 1, longest chunk, blocks * block_size] bool (no keys when fresh)
    # Every chunk row a whole fresh prompt of one length (a burst of equal prompts,
    # or one prompt with no cached prefix): plain causal attention, no mask, which
    # SDPA's flash kernels run with GQA and no [Q, L] mask in memory.
    fresh: bool = False

    @classmethod
    def build(
        cls,
        *,
        query_start: torch.Tensor,
        positions: torch.Tensor,
        block_tables: torch.Tensor,
        context_lens: torch.Tensor,
        block_size: int,
        decode: DecodeAttention | None = None,
    ) -> PrefillPlan:
        device = positions.device
        starts, lengths = query_start.tolist(), context_lens.tolist()
        new = [end - start for start, end in zip(starts, starts[1:], strict=False)]
        single = [r for r, n in enumerate(new) if n == 1]
        chunks = [r for r, n in enumerate(new) if n > 1]
        width = block_tables.shape[1]

        def tables(rows: list[int]) -> torch.Tensor:
            needed = blocks_needed(max((lengths[r] for r in rows), default=1), block_size, width)
            return block_tables[_on(device, rows)][:, :needed]

        chunk_tokens = [t for r in chunks for t in range(starts[r], starts[r + 1])]
        chunk_row = _on(device, [i for i, r in enumerate(chunks) for _ in range(new[r])])
        chunk_column = _on(device, [c for r in chunks for c in range(new[r])])
        query_positions = torch.full(
            (len(chunks), max((new[r] for r in chunks), default=0)), -1, dtype=torch.long, device=device
        )
        query_positions[chunk_row, chunk_column] = positions[_on(device, chunk_tokens)].long()
        chunk_tables = tables(chunks)
        fresh = len({new[r] for r in chunks}) == 1 and all(lengths[r] == new[r] for r in chunks)
        keys = torch.arange(0 if fresh else chunk_tables.shape[1] * block_size, device=device)
        mask = (keys[None, None, :] <= query_positions[:, :, None]) & (
            keys[None, None, :] < context_lens[_on(device, chunks)][:, None, None]
        )
        return cls(
            fresh=fresh,
            decode=decode or paged_decode_attention,
            single_tokens=_on(device, [starts[r] for r in single]),
            single_tables=tables(single),
            single_lengths=context_lens[_on(device, single)],
            chunk_tokens=_on(device, chunk_tokens),
            chunk_row=chunk_row,
            chunk_column=chunk_column,
            chunk_tables=chunk_tables,
            mask=mask[:, None],
        )

    def attend(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """``q``: ``[T, H, D]`` (the new tokens' K/V already stored); returns ``[T, H, D]``."""
        out = torch.zeros_like(q)
        if self.single_tokens.numel():
            out[self.single_tokens] = self.decode(
                q[self.single_tokens], k_cache, v_cache, self.single_tables, self.single_lengths, scale
            )
        if self.chunk_tokens.numel():
            out[self.chunk_tokens] = self._chunks(q[self.chunk_tokens], k_cache, v_cache, scale)
        return out

    def _chunks(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scale: float
    ) -> torch.Tensor:
        heads, head_dim = q.shape[1:]
        rows, longest = self.mask.shape[0], self.mask.shape[2]
        keys = _gather_keys(k_cache, self.chunk_tables).to(q.dtype)  # [R, L, KVH, D]
        values = _gather_keys(v_cache, self.chunk_tables).to(q.dtype)
        grouped = heads != keys.shape[2]
        if self.fresh:  # no padding, keys = the chunk itself: [R, Q, ...] views
            out = F.scaled_dot_product_attention(
                q.view(rows, longest, heads, head_dim).transpose(1, 2),
                keys[:, :longest].transpose(1, 2),
                values[:, :longest].transpose(1, 2),
                is_causal=True,
                scale=scale,
                enable_gqa=grouped,
            )
            return out.transpose(1, 2).reshape(-1, heads, head_dim)
        padded = q.new_zeros(rows, longest, heads, head_dim)
        padded[self.chunk_row, self.chunk_column] = q
        if grouped and q.is_cuda:
            # SDPA's memory-efficient CUDA kernel takes a mask but not `enable_gqa` (torch
            # <= 2.11 falls back to the math kernel, [R, H, Q, L] scores in memory): repeat
            # K/V here instead, a copy of one layer's gathered prefix.
            keys = keys.repeat_interleave(heads // keys.shape[2], dim=2)
            values = values.repeat_interleave(heads // values.shape[2], dim=2)
            grouped = False
        out = F.scaled_dot_product_attention(
            padded.transpose(1, 2),  # [R, H, Q, D]
            keys.transpose(1, 2),  # [R, KVH, L, D]
            values.transpose(1, 2),
            attn_mask=self.mask,
            scale=scale,
            enable_gqa=grouped,
        )
        return out.transpose(1, 2)[self.chunk_row, self.chunk_column]


def prefill_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    *,
    query_start: torch.Tensor,
    positions: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Every new token (``q``: ``[T, H, D]``, rows flattened) over its row's cache up to itself.

    The new tokens' K and V must already be stored. Token ``t`` of row ``r`` at
    position ``p`` attends to the row's cached positions ``0..p``: the prefix a
    previous step or the prefix cache left, and the chunk causally; rows with
    one new token as in a decode step (see `PrefillPlan`, which the model
    builds once a step). Returns ``[T, H, D]``.
    """
    plan = PrefillPlan.build(
        query_start=query_start,
        positions=positions,
        block_tables=block_tables,
        context_lens=context_lens,
        block_size=k_cache.shape[1],
    )
    return plan.attend(q, k_cache, v_cache, scale)
