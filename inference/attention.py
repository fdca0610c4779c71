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


def token_rows(query_start: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """The row of each of the step's ``num_tokens`` tokens (``[T]`` long, on the device).

    Tokens past the last row's end (a padded captured step) get the last row; they
    only read its cache, and nothing reads their output.
    """
    tokens = torch.arange(num_tokens, device=query_start.device, dtype=query_start.dtype)
    rows = torch.searchsorted(query_start[1:].contiguous(), tokens, right=True)
    return rows.clamp_(max=query_start.shape[0] - 2)


def _gather_keys(
    cache: torch.Tensor, block_tables: torch.Tensor, num_blocks: int | None = None
) -> torch.Tensor:
    """Each row's cached tokens in order: ``[rows, num_blocks * block_size, kv_heads, head_dim]``."""
    tables = block_tables if num_blocks is None else block_tables[:, :num_blocks]
    rows, blocks = tables.shape
    gathered = cache[tables.long()]  # [rows, blocks, block_size, kv_heads, head_dim]
    return gathered.reshape(rows, blocks * cache.shape[1], *cache.shape[2:])


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
    gets zeros. Computed in float32. Reads every block of ``block_tables`` (its
    static width), masking what lies past each row's length.
    """
    rows, heads, head_dim = q.shape
    kv_heads = k_cache.shape[2]
    keys = _gather_keys(k_cache, block_tables).float()  # [B, L, KVH, D]
    values = _gather_keys(v_cache, block_tables).float()
    grouped = q.float().view(rows, kv_heads, heads // kv_heads, head_dim)  # [B, KVH, G, D]
    scores = torch.einsum("bhgd,blhd->bhgl", grouped, keys) * scale
    positions = torch.arange(keys.shape[1], device=q.device)
    valid = (positions[None, :] < context_lens[:, None])[:, None, None, :]  # [B, 1, 1, L]
    scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
    # With nothing valid the softmax is uniform over garbage; `* valid` zeroes it.
    probs = torch.softmax(scores, dim=-1) * valid
    out = torch.einsum("bhgl,blhd->bhgd", probs, values)
    return out.reshape(rows, heads, head_dim).to(q.dtype)


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
    previous step or the prefix cache left, and the chunk causally. Rows are
    padded to ``max_query_len`` queries and ``max_context_len`` keys (host-side
    facts, so no sync) and meet in one `scaled_dot_product_attention`.
    Returns ``[T, H, D]``.
    """
    tokens, heads, head_dim = q.shape
    rows = context_lens.shape[0]
    block_size = k_cache.shape[1]
    num_blocks = min(-(-max_context_len // block_size), block_tables.shape[1])
    keys = _gather_keys(k_cache, block_tables, num_blocks).to(q.dtype)  # [B, L, KVH, D]
    values = _gather_keys(v_cache, block_tables, num_blocks).to(q.dtype)
    row = token_rows(query_start, tokens).long()
    column = torch.arange(tokens, device=q.device) - query_start.long()[row]
    padded = q.new_zeros(rows, max_query_len, heads, head_dim)
    padded[row, column] = q
    query_positions = torch.full((rows, max_query_len), -1, dtype=torch.long, device=q.device)
    query_positions[row, column] = positions.long()
    key_positions = torch.arange(keys.shape[1], device=q.device)
    mask = (key_positions[None, None, :] <= query_positions[:, :, None]) & (
        key_positions[None, None, :] < context_lens[:, None, None]
    )  # [B, Q, L]
    # A padding query sees nothing; let it see key 0 rather than have SDPA produce
    # NaN for an empty row (its output is dropped below anyway).
    mask[..., 0] |= query_positions < 0
    out = F.scaled_dot_product_attention(
        padded.transpose(1, 2),  # [B, H, Q, D]
        keys.transpose(1, 2),  # [B, KVH, L, D]
        values.transpose(1, 2),
        attn_mask=mask[:, None],
        scale=scale,
        enable_gqa=heads != keys.shape[2],
    )
    return out.transpose(1, 2)[row, column]
