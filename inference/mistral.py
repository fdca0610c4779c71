"""Our own Mistral forward for serving, over the paged KV cache.

The same arithmetic as transformers' ``MistralForCausalLM`` (its RMSNorm, its
RoPE with θ from the config, SiLU MLP, no biases) with what serving wants:
one fused QKV and one fused gate/up matrix per layer, GQA without repeating
K and V, K and V written straight into `PagedKV` blocks, and logits only at
each row's last new token. One `forward` serves prefill chunks, prefix-cache
hits and decode steps alike (`inference.forward_batch.ForwardBatch`); a decode
step reads nothing back to the host, so the engine can capture it in a CUDA
graph. Plain torch, no Django: weights come from a loaded transformers model
(`MistralForward.from_hf`), see `inference.loading.load_forward`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from inference.attention import PrefillPlan, blocks_needed, paged_decode_attention, store_kv, token_rows
from inference.forward_batch import PAD_SLOT, ForwardBatch
from inference.paged_kv import PagedKV, kv_shape
from inference.triton_attention import decode_kernel_for


@dataclass(frozen=True)
class MistralShape:
    """The figures of a Mistral config that the forward needs."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_positions: int

    @classmethod
    def of(cls, config: PretrainedConfig) -> MistralShape:
        layers, kv_heads, head_dim = kv_shape(config)
        rope = getattr(config, "rope_parameters", None) or {}
        # transformers 5 keeps θ in `rope_parameters`; 4.x had `rope_theta`.
        theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
        rope_type = rope.get("rope_type", "default")
        if rope_type != "default" or theta is None:
            raise ValueError(f"only plain RoPE with a θ is supported, not {rope!r}")
        window = getattr(config, "sliding_window", None)
        max_positions = int(config.max_position_embeddings)
        if window is not None and window < max_positions:
            raise ValueError(
                f"a sliding window of {window} tokens (Mistral v0.1) is not supported by the paged "
                "forward; v0.2 has none"
            )
        heads = int(config.num_attention_heads)
        if heads % kv_heads:
            raise ValueError(f"{heads} query heads do not split into {kv_heads} KV-head groups")
        return cls(
            vocab_size=int(config.vocab_size),
            hidden_size=int(config.hidden_size),
            intermediate_size=int(config.intermediate_size),
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            rms_norm_eps=float(config.rms_norm_eps),
            rope_theta=float(theta),
            max_positions=max_positions,
        )


class RMSNorm(nn.Module):
    """RMSNorm in one `F.rms_norm` call (float32 inside, like transformers').

    transformers rounds the normalised value to the model's dtype before the gain;
    this multiplies first and rounds once: the same in float32, at most a bf16 ulp
    apart otherwise, for one fused kernel instead of eight small ones.
    """

    def __init__(self, weight: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.eps = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(hidden, self.weight.shape, self.weight, self.eps)


def rope_tables(
    positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (``[T, 1, head_dim]``) of each token's position, as transformers computes them."""
    freqs = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat((freqs, freqs), dim=-1)[:, None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (``[T, heads, head_dim]``) by half its dims (transformers' `rotate_half` layout)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


@dataclass(frozen=True)
class StepPlan:
    """What every layer's attention of one step shares, computed once per step.

    A decode step attends each token as a row of its own: its row's blocks, and
    its own length (position + 1), so the trailing padding tokens of a captured
    step need no special case. The Triton kernel (CUDA) gets the block tables'
    whole width, so a captured graph serves any length up to it; the torch path
    (CPU) only the columns ``max_context_len`` needs. A step with a prefill has
    its `PrefillPlan` (which reads the rows' lengths back to the host once).
    """

    batch: ForwardBatch
    decode: Callable[..., torch.Tensor] | None = None
    decode_tables: torch.Tensor | None = None  # [T, blocks]
    decode_lengths: torch.Tensor | None = None  # [T]
    prefill: PrefillPlan | None = None

    @classmethod
    def of(cls, batch: ForwardBatch, kv: PagedKV) -> StepPlan:
        tables = batch.block_tables
        kernel = decode_kernel_for(kv.keys[0].device, kv.keys[0].shape[-1], kv.block_size)
        if not batch.is_decode:
            prefill = PrefillPlan.build(
                query_start=batch.query_start,
                positions=batch.positions,
                block_tables=tables,
                context_lens=batch.context_lens,
                block_size=kv.block_size,
                decode=kernel,
            )
            return cls(batch, prefill=prefill)
        if kernel is None:
            tables = tables[:, : blocks_needed(batch.max_context_len, kv.block_size, tables.shape[1])]
        rows = token_rows(batch.query_start, batch.input_ids.shape[0]).long()
        return cls(
            batch,
            decode=kernel or paged_decode_attention,
            decode_tables=tables[rows],
            decode_lengths=batch.positions + 1,
        )

    def attend(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scale: float
    ) -> torch.Tensor:
        if self.prefill is not None:
            return self.prefill.attend(q, k_cache, v_cache, scale)
        assert self.decode is not None and self.decode_tables is not None and self.decode_lengths is not None
        return self.decode(q, k_cache, v_cache, self.decode_tables, self.decode_lengths, scale)


class DecoderLayer(nn.Module):
    """Attention then MLP, each behind an RMSNorm and a residual."""

    def __init__(
        self,
        shape: MistralShape,
        *,
        qkv: torch.Tensor,
        out: torch.Tensor,
        gate_up: torch.Tensor,
        down: torch.Tensor,
        input_norm: torch.Tensor,
        post_norm: torch.Tensor,
    ) -> None:
        super().__init__()
        self.shape = shape
        self.qkv = nn.Parameter(qkv, requires_grad=False)  # [(H + 2 KVH) D, hidden]
        self.out = nn.Parameter(out, requires_grad=False)  # [hidden, H D]
        self.gate_up = nn.Parameter(gate_up, requires_grad=False)  # [2 I, hidden]
        self.down = nn.Parameter(down, requires_grad=False)  # [hidden, I]
        self.input_norm = RMSNorm(input_norm, shape.rms_norm_eps)
        self.post_norm = RMSNorm(post_norm, shape.rms_norm_eps)

    def forward(
        self,
        hidden: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        plan: StepPlan,
        cache: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        hidden = hidden + self._attention(self.input_norm(hidden), rope, plan, cache)
        gate, up = F.linear(self.post_norm(hidden), self.gate_up).chunk(2, dim=-1)
        return hidden + F.linear(F.silu(gate) * up, self.down)

    def _attention(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        plan: StepPlan,
        cache: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        s = self.shape
        tokens = x.shape[0]
        qkv = F.linear(x, self.qkv).view(tokens, s.num_heads + 2 * s.num_kv_heads, s.head_dim)
        # Q and K rotate together: one set of RoPE kernels a layer, not two.
        qk = apply_rope(qkv[:, : s.num_heads + s.num_kv_heads], *rope)
        q, k, v = qk[:, : s.num_heads], qk[:, s.num_heads :], qkv[:, s.num_heads + s.num_kv_heads :]
        k_cache, v_cache = cache
        store_kv(k_cache, v_cache, k, v, plan.batch.slot_mapping)
        attended = plan.attend(q, k_cache, v_cache, s.head_dim**-0.5)
        return F.linear(attended.reshape(tokens, s.num_heads * s.head_dim), self.out)


class MistralForward(nn.Module):
    """The whole model: embedding, decoder layers, final norm, LM head."""

    def __init__(
        self,
        config: PretrainedConfig,
        *,
        embed: torch.Tensor,
        layers: list[DecoderLayer],
        norm: torch.Tensor,
        lm_head: torch.Tensor,
    ) -> None:
        super().__init__()
        self.config = config
        self.shape = MistralShape.of(config)
        self.embed = nn.Parameter(embed, requires_grad=False)
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(norm, self.shape.rms_norm_eps)
        self.lm_head = nn.Parameter(lm_head, requires_grad=False)
        dims = torch.arange(0, self.shape.head_dim, 2, dtype=torch.float) / self.shape.head_dim
        # float32 whatever the weights' dtype (kept out of `.to(dtype)` by `_apply`
        # below): bf16 frequencies blur positions far into 32k.
        self.register_buffer("inv_freq", 1.0 / (self.shape.rope_theta**dims), persistent=False)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        inv_freq = self.inv_freq
        result = super()._apply(fn, recurse)
        self.inv_freq = inv_freq.to(self.embed.device)
        return result

    @classmethod
    def from_hf(cls, model: PreTrainedModel, *, consume: bool = False) -> MistralForward:
        """Our forward over a transformers ``MistralForCausalLM``'s weights (same device and dtype).

        The Q, K and V (and gate and up) matrices are concatenated, which copies
        them; the others are shared. With ``consume``, each converted layer of
        ``model`` is dropped at once, so a 7B model is never held twice.
        """
        config = model.config
        shape = MistralShape.of(config)
        body = model.model
        layers = []
        for index in range(shape.num_layers):
            hf = body.layers[index]
            attn, mlp = hf.self_attn, hf.mlp
            layers.append(
                DecoderLayer(
                    shape,
                    qkv=torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]).detach(),
                    out=attn.o_proj.weight.detach(),
                    gate_up=torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach(),
                    down=mlp.down_proj.weight.detach(),
                    input_norm=hf.input_layernorm.weight.detach(),
                    post_norm=hf.post_attention_layernorm.weight.detach(),
                )
            )
            if consume:
                body.layers[index] = nn.Identity()
        return cls(
            config,
            embed=body.embed_tokens.weight.detach(),
            layers=layers,
            norm=body.norm.weight.detach(),
            lm_head=model.lm_head.weight.detach(),
        ).eval()

    @property
    def device(self) -> torch.device:
        return self.embed.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.dtype

    def check(self, batch: ForwardBatch, kv: PagedKV) -> None:
        """Raise ValueError for a step this model cannot run. Reads the ids back to the host:
        the engine checks a prompt once at admission and a captured decode step skips it."""
        s = self.shape
        tokens = batch.input_ids.shape[0]
        if tokens == 0:
            raise ValueError("a step needs at least one token")
        if batch.positions.shape != (tokens,) or batch.slot_mapping.shape != (tokens,):
            raise ValueError("input_ids, positions and slot_mapping must all be [T]")
        if batch.query_start.shape != (batch.num_rows + 1,) or batch.block_tables.shape[0] != batch.num_rows:
            raise ValueError("query_start must be [B + 1] and block_tables [B, max_blocks]")
        if batch.max_context_len > s.max_positions:
            raise ValueError(
                f"a context of {batch.max_context_len} tokens is longer than the model's {s.max_positions}"
            )
        if batch.max_context_len > batch.block_tables.shape[1] * kv.block_size:
            raise ValueError(f"block_tables hold fewer than max_context_len={batch.max_context_len} tokens")
        if kv.num_layers != s.num_layers or tuple(kv.keys[0].shape[2:]) != (s.num_kv_heads, s.head_dim):
            raise ValueError("the KV cache was allocated for another model shape")
        _check_range("token ids", batch.input_ids, 0, s.vocab_size)
        _check_range("positions", batch.positions, 0, batch.max_context_len)
        _check_range("slots", batch.slot_mapping, PAD_SLOT, kv.num_slots)
        _check_range("blocks", batch.block_tables, 0, kv.num_blocks)

    @torch.inference_mode()
    def forward(self, batch: ForwardBatch, kv: PagedKV, *, check: bool = True) -> torch.Tensor:
        """Write the step's K/V to ``kv`` and return fp32 logits ``[B, vocab]`` at each row's last new token.

        A row with no new token (padding) gets the logits of whatever token precedes
        it; the caller ignores them.
        """
        if check:
            self.check(batch, kv)
        plan = StepPlan.of(batch, kv)
        hidden = F.embedding(batch.input_ids, self.embed)
        rope = rope_tables(batch.positions, self.inv_freq, hidden.dtype)
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, rope, plan, kv.layer(index))
        last = (batch.query_start[1:].long() - 1).clamp(min=0)
        return F.linear(self.norm(hidden[last]), self.lm_head).float()


def _check_range(what: str, values: torch.Tensor, low: int, end: int) -> None:
    """Raise ValueError unless every value lies in [low, end)."""
    if values.numel() == 0:
        return
    least, most = int(values.min()), int(values.max())
    if least < low or most >= end:
        raise ValueError(f"{what} must lie in [{low}, {end}), got {least}..{most}")
