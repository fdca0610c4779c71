"""The paged KV cache's bookkeeping: which blocks each sequence owns, and the prefix cache.

The cache is `num_blocks` blocks of `block_size` token slots. A sequence
owns a list of blocks (its block table); the token at position ``p`` lives
in ``block_table[p // block_size]``. A full block whose K/V has been
computed is registered in the prefix cache under a chain hash of its tokens
and everything before them, so a later sequence with the same prefix (the
next turn of a conversation, a regenerate, a shared system prompt) takes the
same block by reference count instead of computing it again. A block nobody
holds stays cached in the free list; fresh blocks are taken from its
least-recently-used end, blocks that hold nothing worth keeping first.

A hash only finds a candidate: a hit is confirmed by comparing the block's
tokens and the identity of the block before it, so a collision can never
hand a sequence somebody else's K/V. Plain Python: no torch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# parent hash (None for the first block) and the block's tokens -> its chain hash
HashFn = Callable[[int | None, tuple[int, ...]], int]


def chain_hash(parent: int | None, tokens: tuple[int, ...]) -> int:
    # Python's hash of a tuple of ints is deterministic (no per-process salt for ints).
    return hash((parent, tokens))


@dataclass(eq=False, slots=True)
class Block:
    id: int
    ref_count: int = 0
    # Bumped each time the block is handed out afresh: a child cached on top of an
    # older content of this block must not match the new one.
    generation: int = 0
    hash: int | None = None  # set once the block is full, computed and registered
    tokens: tuple[int, ...] = ()
    parent: tuple[int, int] | None = None  # (id, generation) of the block before it


@dataclass(eq=False)
class BlockTable:
    """What the block manager keeps for one sequence."""

    blocks: list[int] = field(default_factory=list)
    registered: int = 0  # leading blocks already in the prefix cache (or taken from it)


class CacheFullError(RuntimeError):
    """Not enough free blocks: the scheduler should have asked first."""


class BlockManager:
    """Hands out blocks per sequence, shares full blocks through the prefix cache."""

    def __init__(
        self, num_blocks: int, block_size: int, *, prefix_cache: bool = True, hash_fn: HashFn = chain_hash
    ) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("the cache needs at least one block of at least one token")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_cache = prefix_cache
        self._hash_fn = hash_fn
        self._blocks = [Block(i) for i in range(num_blocks)]
        # Blocks nobody holds, least recently used first; their cached content survives until taken.
        self._free: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))
        self._by_hash: dict[int, int] = {}
        # Prompt tokens looked up in the prefix cache, and those found there.
        self.lookup_tokens = 0
        self.hit_tokens = 0

    # --- what the scheduler asks -------------------------------------------------------------

    @property
    def free_blocks(self) -> int:
        return len(self._free)

    @property
    def used_blocks(self) -> int:
        return self.num_blocks - len(self._free)

    @property
    def hit_rate(self) -> float:
        """Share of looked-up prompt tokens served from the prefix cache (0 before any lookup)."""
        return self.hit_tokens / self.lookup_tokens if self.lookup_tokens else 0.0

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def allocate(self, table: BlockTable, tokens: Sequence[int]) -> int:
        """Give a new sequence blocks for all of `tokens`; return how many leading tokens are cached.

        Raises CacheFullError, changing nothing, when the blocks it still
        needs are not free. At least one token is always left to compute
        (its logits are the point of the step).
        """
        assert not table.blocks, "allocate is for a sequence that holds no blocks"
        hits = self._longest_cached_prefix(tokens)
        needed = self.blocks_for(len(tokens)) - len(hits)
        revived = sum(1 for block_id in hits if self._blocks[block_id].ref_count == 0)
        if needed > len(self._free) - revived:
            raise CacheFullError(f"{needed} blocks needed, {len(self._free) - revived} free")
        for block_id in hits:
            self._hold(block_id)
        table.blocks = [*hits, *(self._take_fresh() for _ in range(needed))]
        table.registered = len(hits)
        cached = len(hits) * self.block_size
        self.lookup_tokens += len(tokens)
        self.hit_tokens += cached
        return cached

    def can_allocate(self, tokens: Sequence[int]) -> bool:
        hits = self._longest_cached_prefix(tokens)
        revived = sum(1 for block_id in hits if self._blocks[block_id].ref_count == 0)
        return self.blocks_for(len(tokens)) - len(hits) <= len(self._free) - revived

    def can_grow(self, table: BlockTable, num_tokens: int) -> bool:
        """Whether the sequence can hold `num_tokens` tokens in all (needing at most the free blocks)."""
        return self.blocks_for(num_tokens) - len(table.blocks) <= len(self._free)

    def grow(self, table: BlockTable, num_tokens: int) -> None:
        """Add blocks until the sequence can hold `num_tokens` tokens."""
        missing = self.blocks_for(num_tokens) - len(table.blocks)
        if missing <= 0:
            return
        if missing > len(self._free):
            raise CacheFullError(f"{missing} blocks needed, {len(self._free)} free")
        table.blocks.extend(self._take_fresh() for _ in range(missing))

    def commit(self, table: BlockTable, tokens: Sequence[int], computed: int) -> None:
        """The first `computed` of `tokens` now have their K/V in the cache: register the full blocks."""
        if not self.prefix_cache:
            return
        full = computed // self.block_size
        for index in range(table.registered, full):
            block = self._blocks[table.blocks[index]]
            parent = self._blocks[table.blocks[index - 1]] if index else None
            start = index * self.block_size
            block.tokens = tuple(tokens[start : start + self.block_size])
            block.parent = (parent.id, parent.generation) if parent else None
            block.hash = self._hash_fn(parent.hash if parent else None, block.tokens)
            # An equal block computed by another sequence at the same time stays the one found.
            self._by_hash.setdefault(block.hash, block.id)
        table.registered = max(table.registered, full)

    def free(self, table: BlockTable) -> None:
        """Give back a sequence's blocks (finished, cancelled or preempted); cached ones stay findable."""
        # Last block first: the tail of a prefix is worth less than its head (which every hit needs).
        for block_id in reversed(table.blocks):
            block = self._blocks[block_id]
            block.ref_count -= 1
            if block.ref_count == 0:
                self._free[block_id] = None
                if block.hash is None:
                    self._free.move_to_end(block_id, last=False)  # nothing worth keeping: reuse first
        table.blocks = []
        table.registered = 0

    # --- inside ------------------------------------------------------------------------------

    def _longest_cached_prefix(self, tokens: Sequence[int]) -> list[int]:
        if not self.prefix_cache:
            return []
        # A prompt found whole keeps its last block out, so that one token is left to compute.
        full = (len(tokens) - 1) // self.block_size
        hits: list[int] = []
        parent: Block | None = None
        for index in range(full):
            chunk = tuple(tokens[index * self.block_size : (index + 1) * self.block_size])
            found = self._by_hash.get(self._hash_fn(parent.hash if parent else None, chunk))
            if found is None:
                break
            block = self._blocks[found]
            expected_parent = (parent.id, parent.generation) if parent else None
            if block.tokens != chunk or block.parent != expected_parent:
                break  # a hash collision: the candidate holds other text
            hits.append(found)
            parent = block
        return hits

    def _hold(self, block_id: int) -> None:
        block = self._blocks[block_id]
        if block.ref_count == 0:
            del self._free[block_id]
        block.ref_count += 1

    def _take_fresh(self) -> int:
        block_id, _ = self._free.popitem(last=False)
        block = self._blocks[block_id]
        if block.hash is not None and self._by_hash.get(block.hash) == block_id:
            del self._by_hash[block.hash]  # evicted: its content is about to be overwritten
        block.hash, block.tokens, block.parent = None, (), None
        block.generation += 1
        block.ref_count = 1
        return block_id
