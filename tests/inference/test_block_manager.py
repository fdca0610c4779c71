"""The paged cache's bookkeeping: allocation, sharing by prefix, LRU eviction, collisions checked by tokens."""

from __future__ import annotations

import pytest

from inference.block_manager import BlockManager, BlockTable, CacheFullError

BS = 4


def _computed(manager: BlockManager, tokens: list[int]) -> BlockTable:
    """A sequence that allocated `tokens` and computed all of them."""
    table = BlockTable()
    manager.allocate(table, tokens)
    manager.commit(table, tokens, len(tokens))
    return table


def test_allocation_takes_blocks_for_every_token_and_free_gives_them_back() -> None:
    manager = BlockManager(8, BS)
    table = BlockTable()
    assert manager.allocate(table, list(range(10))) == 0
    assert len(table.blocks) == 3 and len(set(table.blocks)) == 3
    assert (manager.used_blocks, manager.free_blocks) == (3, 5)
    manager.grow(table, 13)
    assert len(table.blocks) == 4
    manager.free(table)
    assert (manager.used_blocks, manager.free_blocks, table.blocks) == (0, 8, [])


def test_a_shared_prefix_is_taken_by_reference_and_counted_as_hits() -> None:
    manager = BlockManager(8, BS)
    first = _computed(manager, list(range(10)))  # two full blocks registered, a partial third
    second = BlockTable()
    cached = manager.allocate(second, [*range(8), 99, 98, 97])
    assert cached == 8
    assert second.blocks[:2] == first.blocks[:2] and second.blocks[2] not in first.blocks
    assert manager.used_blocks == 4  # 3 + one new block: the two shared ones are counted once
    assert manager.hit_rate == pytest.approx(8 / 21)
    manager.free(first)
    assert manager.used_blocks == 3  # still held by the second


def test_a_prompt_found_whole_still_computes_its_last_block() -> None:
    manager = BlockManager(8, BS)
    first = _computed(manager, list(range(8)))
    again = BlockTable()
    assert manager.allocate(again, list(range(8))) == 4  # the last token's logits are needed
    assert again.blocks[0] == first.blocks[0] and again.blocks[1] != first.blocks[1]


def test_only_computed_blocks_are_shared() -> None:
    manager = BlockManager(8, BS)
    table = BlockTable()
    manager.allocate(table, list(range(12)))
    manager.commit(table, list(range(12)), 5)  # one chunk of prefill so far: one full block
    other = BlockTable()
    assert manager.allocate(other, list(range(12))) == 4


def test_freed_blocks_stay_cached_and_the_least_recently_used_go_first() -> None:
    manager = BlockManager(4, BS)
    old = _computed(manager, [1, 1, 1, 1, 0])
    manager.free(old)
    new = _computed(manager, [2, 2, 2, 2, 0])
    manager.free(new)
    assert manager.free_blocks == 4  # freed but still findable
    # Two fresh blocks are needed: the two uncached ones (the partial tails) go first.
    manager.free(_computed(manager, [3, 3, 3, 3, 3, 3, 3]))
    probe = BlockTable()
    assert manager.allocate(probe, [1, 1, 1, 1, 0]) == 4
    manager.free(probe)
    # Now the block of [2, 2, 2, 2] is the least recently used cached block: the next take evicts it.
    manager.free(_computed(manager, [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]))
    probe = BlockTable()
    assert manager.allocate(probe, [2, 2, 2, 2, 0]) == 0
    manager.free(probe)


def test_a_hash_collision_never_shares_other_tokens() -> None:
    manager = BlockManager(8, BS, hash_fn=lambda parent, tokens: 7)  # every block collides
    first = _computed(manager, [1, 2, 3, 4, 5])
    other = BlockTable()
    assert manager.allocate(other, [9, 9, 9, 9, 5]) == 0
    assert not set(other.blocks) & set(first.blocks)


def test_a_collision_on_a_later_block_checks_what_came_before() -> None:
    # Same second block, different first block: the second must not be taken from the first sequence.
    manager = BlockManager(8, BS, hash_fn=lambda parent, tokens: hash(tokens))  # ignores the prefix
    first = _computed(manager, [1, 1, 1, 1, 2, 2, 2, 2, 0])
    other = BlockTable()
    assert manager.allocate(other, [3, 3, 3, 3, 2, 2, 2, 2, 0]) == 0
    assert not set(other.blocks) & set(first.blocks)


def test_a_colliding_block_after_a_real_hit_is_checked_against_its_own_parent() -> None:
    manager = BlockManager(8, BS, hash_fn=lambda parent, tokens: hash(tokens))  # ignores the prefix
    first = _computed(manager, [1, 1, 1, 1, 2, 2, 2, 2, 0])
    second = _computed(
        manager, [3, 3, 3, 3, 2, 2, 2, 2, 0]
    )  # its [2, 2, 2, 2] is not registered over the first's
    probe = BlockTable()
    assert manager.allocate(probe, [3, 3, 3, 3, 2, 2, 2, 2, 5]) == 4
    assert probe.blocks[0] == second.blocks[0] and probe.blocks[1] not in first.blocks


def test_allocation_beyond_the_free_blocks_changes_nothing() -> None:
    manager = BlockManager(3, BS)
    held = _computed(manager, [1, 1, 1, 1, 1])
    table = BlockTable()
    assert not manager.can_allocate(list(range(9)))
    with pytest.raises(CacheFullError):
        manager.allocate(table, list(range(9)))
    assert (table.blocks, manager.used_blocks, manager.lookup_tokens) == ([], 2, 5)
    manager.free(held)


def test_prefix_cache_off_shares_nothing() -> None:
    manager = BlockManager(8, BS, prefix_cache=False)
    _computed(manager, list(range(9)))
    assert manager.allocate(BlockTable(), list(range(9))) == 0
    assert manager.hit_rate == 0.0


def test_a_cache_of_no_blocks_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one block"):
        BlockManager(0, BS)
