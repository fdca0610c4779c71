"""A stand-in for the paged model in engine tests: two attention layers over the `ForwardBatch` contract.

Small and plain (a loop over rows, host reads allowed: it is a test double),
but it really reads and writes the paged cache through the block tables and
slot mapping, and its second layer's K/V depends on the first layer's
attention over the cached context: a wrong slot, table or position changes
its logits.
"""

from __future__ import annotations

import math

import torch

from inference.forward_batch import ForwardBatch


class ToyKV:
    def __init__(self, *, num_blocks: int, block_size: int, layers: int = 2, dim: int = 16) -> None:
        self.block_size = block_size
        self.k = torch.zeros(layers, num_blocks * block_size, dim)
        self.v = torch.zeros(layers, num_blocks * block_size, dim)


class ToyPagedModel:
    def __init__(self, *, vocab: int = 32000, dim: int = 16, layers: int = 2, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)

        def weight(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=generator) / math.sqrt(shape[0])

        self.dim, self.layers = dim, layers
        self.embedding = torch.randn(vocab, dim, generator=generator)
        self.qkv = [weight(dim, 3 * dim) for _ in range(layers)]
        self.head = weight(dim, vocab) * 8  # peaked logits: greedy choices are clear-cut
        self.calls = 0

    def forward(self, batch: ForwardBatch, kv: ToyKV, *, check: bool = True) -> torch.Tensor:
        self.calls += 1
        positions = batch.positions
        angles = positions[:, None].float() / (100.0 ** (torch.arange(self.dim) / self.dim))
        x = self.embedding[batch.input_ids] + torch.sin(angles)
        starts, contexts = batch.query_start.tolist(), batch.context_lens.tolist()
        written = batch.slot_mapping >= 0
        for layer in range(self.layers):
            q, k, v = (x @ self.qkv[layer]).split(self.dim, dim=-1)
            kv.k[layer, batch.slot_mapping[written]] = k[written]
            kv.v[layer, batch.slot_mapping[written]] = v[written]
            mixed = torch.zeros_like(x)
            for row in range(batch.num_rows):
                s, e, length = starts[row], starts[row + 1], contexts[row]
                if e == s:
                    continue
                span = torch.arange(length)
                slots = (
                    batch.block_tables[row, span // kv.block_size].long() * kv.block_size
                    + span % kv.block_size
                )
                scores = q[s:e] @ kv.k[layer, slots].T / math.sqrt(self.dim)
                scores = scores.masked_fill(span[None, :] > positions[s:e, None], float("-inf"))
                mixed[s:e] = torch.softmax(scores, dim=-1) @ kv.v[layer, slots]
            x = x + mixed
        last = torch.tensor([max(e - 1, 0) for e in starts[1:]])
        return x[last] @ self.head

    def reference_logits(self, tokens: list[int]) -> torch.Tensor:
        """The logits after `tokens`, computed in one prefill on a cache of its own."""
        block_size = 4
        blocks = -(-len(tokens) // block_size)
        kv = ToyKV(num_blocks=blocks, block_size=block_size, layers=self.layers, dim=self.dim)
        batch = ForwardBatch(
            input_ids=torch.tensor(tokens),
            positions=torch.arange(len(tokens)),
            slot_mapping=torch.arange(len(tokens)),
            query_start=torch.tensor([0, len(tokens)], dtype=torch.int32),
            context_lens=torch.tensor([len(tokens)], dtype=torch.int32),
            block_tables=torch.arange(blocks, dtype=torch.int32)[None, :],
            max_query_len=len(tokens),
            max_context_len=len(tokens),
        )
        return self.forward(batch, kv)[0]
