"""Our paged Mistral forward against transformers' `MistralForCausalLM` on the same weights.

fp32 on the CPU; logits must agree within ``ATOL`` (absolute, on logits whose
spread is ~1; `test_the_tolerance_can_fail` shows that a one-position RoPE
error lies far outside it). The weights are the tiny model's, scaled up so
that attention and positions matter to the logits.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
import torch
from transformers import MistralForCausalLM

from inference.forward_batch import PAD_SLOT, ForwardBatch
from inference.loading import EngineError, load_forward
from inference.mistral import MistralForward
from inference.paged_kv import PagedKV
from inference.tiny import build_tiny_model
from tests.support.paged import Row, make_batch

ATOL = 1e-4
BLOCK = 4


@pytest.fixture(scope="module")
def hf() -> MistralForCausalLM:
    model = build_tiny_model(seed=3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.endswith("norm.weight"):
                param.mul_(5.0)  # std 0.1: sharp enough attention that positions show
    return model


@pytest.fixture(scope="module")
def ours(hf: MistralForCausalLM) -> MistralForward:
    return MistralForward.from_hf(hf)


def new_cache(hf: MistralForCausalLM, blocks: int = 32) -> PagedKV:
    return PagedKV.allocate(hf.config, num_blocks=blocks, block_size=BLOCK, dtype=torch.float32, device="cpu")


def reference(hf: MistralForCausalLM, ids: list[int]) -> torch.Tensor:
    """transformers' logits at the last of ``ids``, from scratch."""
    with torch.no_grad():
        return hf(torch.tensor([ids])).logits[0, -1].float()


def prompt(length: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(32000) for _ in range(length)]


def blocks_for(first: int, tokens: int) -> list[int]:
    return list(range(first, first + -(-tokens // BLOCK)))


def test_one_prompt_matches_transformers(hf: MistralForCausalLM, ours: MistralForward) -> None:
    ids = prompt(11, seed=1)
    logits = ours(make_batch([Row(ids, blocks_for(0, 11))], block_size=BLOCK), new_cache(hf))
    assert logits.shape == (1, 32000) and logits.dtype == torch.float32
    torch.testing.assert_close(logits[0], reference(hf, ids), atol=ATOL, rtol=0)


def test_the_tolerance_can_fail(hf: MistralForCausalLM, ours: MistralForward) -> None:
    # The same ids one position later: RoPE makes it differ by far more than ATOL.
    ids = prompt(11, seed=1)
    row = Row(ids, blocks_for(0, 12), cached=1)
    logits = ours(make_batch([row], block_size=BLOCK), new_cache(hf))
    assert (logits[0] - reference(hf, ids)).abs().max() > 100 * ATOL


def test_a_batch_of_different_lengths_matches_each_prompt_alone(
    hf: MistralForCausalLM, ours: MistralForward
) -> None:
    prompts = [prompt(5, 2), prompt(13, 3), prompt(1, 4), prompt(8, 5)]
    rows, first = [], 0
    for ids in prompts:
        rows.append(Row(ids, blocks_for(first, len(ids))))
        first += len(rows[-1].blocks)
    logits = ours(make_batch(rows, block_size=BLOCK), new_cache(hf))
    for index, ids in enumerate(prompts):
        torch.testing.assert_close(logits[index], reference(hf, ids), atol=ATOL, rtol=0)


def test_chunked_prefill_then_decode_equals_full_forwards(
    hf: MistralForCausalLM, ours: MistralForward
) -> None:
    ids = prompt(17, seed=6)
    kv, blocks = new_cache(hf), [9, 2, 14, 5, 0]
    for start, end in ((0, 5), (5, 10), (10, 13)):  # chunks that cross block boundaries
        logits = ours(make_batch([Row(ids[start:end], blocks, cached=start)], block_size=BLOCK), kv)
        torch.testing.assert_close(logits[0], reference(hf, ids[:end]), atol=ATOL, rtol=0)
    for position in range(13, 17):  # then one token a step
        logits = ours(make_batch([Row([ids[position]], blocks, cached=position)], block_size=BLOCK), kv)
        torch.testing.assert_close(logits[0], reference(hf, ids[: position + 1]), atol=ATOL, rtol=0)


def test_a_cached_prefix_plus_the_new_part_equals_a_full_prefill(
    hf: MistralForCausalLM, ours: MistralForward
) -> None:
    # A first turn fills blocks 3 and 7; a second request shares both (the prefix
    # cache) and prefills only its own tail, into block 1.
    first_turn, follow_up = prompt(8, seed=7), prompt(6, seed=8)
    kv = new_cache(hf)
    ours(make_batch([Row(first_turn, [3, 7])], block_size=BLOCK), kv)
    both = make_batch([Row(follow_up, [3, 7, 1, 4], cached=8)], block_size=BLOCK)
    logits = ours(both, kv)
    torch.testing.assert_close(logits[0], reference(hf, first_turn + follow_up), atol=ATOL, rtol=0)


def test_scattered_block_tables_give_the_same_logits(hf: MistralForCausalLM, ours: MistralForward) -> None:
    ids = prompt(14, seed=9)
    in_order = ours(make_batch([Row(ids, [0, 1, 2, 3])], block_size=BLOCK), new_cache(hf))
    shuffled = ours(make_batch([Row(ids, [27, 4, 19, 11])], block_size=BLOCK), new_cache(hf))
    torch.testing.assert_close(shuffled, in_order, atol=1e-5, rtol=0)


def test_greedy_tokens_equal_transformers_greedy(hf: MistralForCausalLM, ours: MistralForward) -> None:
    ids, steps = prompt(9, seed=10), 20
    expected = hf.generate(
        torch.tensor([ids]), max_new_tokens=steps, do_sample=False, min_new_tokens=steps, pad_token_id=0
    )[0, len(ids) :].tolist()
    kv, blocks = new_cache(hf), blocks_for(2, len(ids) + steps)
    logits = ours(make_batch([Row(ids, blocks)], block_size=BLOCK), kv)
    tokens = [int(logits[0].argmax())]
    for position in range(len(ids), len(ids) + steps - 1):
        logits = ours(make_batch([Row([tokens[-1]], blocks, cached=position)], block_size=BLOCK), kv)
        tokens.append(int(logits[0].argmax()))
    assert tokens == expected


def test_padding_rows_disturb_neither_other_rows_nor_the_cache(
    hf: MistralForCausalLM, ours: MistralForward
) -> None:
    a, b = prompt(6, seed=11), prompt(3, seed=12)
    rows_prefill = [Row(a[:-1], [0, 1]), Row(b[:-1], [2])]
    step = [Row(a[-1:], [0, 1], cached=5), Row(b[-1:], [2], cached=2)]
    plain_kv, padded_kv = new_cache(hf, 8), new_cache(hf, 8)
    for kv in (plain_kv, padded_kv):
        ours(make_batch(rows_prefill, block_size=BLOCK), kv)
    plain = ours(make_batch(step, block_size=BLOCK), plain_kv)
    # A decode step padded to a bucket of 6 rows: 4 empty rows and 4 unowned tokens.
    padded_batch = make_batch(step, block_size=BLOCK, padding_rows=4, padding_tokens=4)
    assert padded_batch.is_decode and (padded_batch.slot_mapping == PAD_SLOT).sum() == 4
    padded = ours(padded_batch, padded_kv)
    assert padded.shape == (6, 32000)
    torch.testing.assert_close(padded[:2], plain, atol=1e-5, rtol=0)  # other matmul shapes
    for mine, theirs in zip(padded_kv.keys + padded_kv.values, plain_kv.keys + plain_kv.values, strict=True):
        torch.testing.assert_close(mine[:3], theirs[:3], atol=1e-5, rtol=0)  # the rows' own blocks
        assert not mine[3 : padded_kv.num_blocks].any()  # no one else's block was written
        assert mine[padded_kv.scratch_block].any() and not theirs[plain_kv.scratch_block].any()
    torch.testing.assert_close(plain[0], reference(hf, a), atol=ATOL, rtol=0)
    torch.testing.assert_close(plain[1], reference(hf, b), atol=ATOL, rtol=0)


def on_meta(batch: ForwardBatch) -> ForwardBatch:
    for name in ("input_ids", "positions", "slot_mapping", "query_start", "context_lens", "block_tables"):
        setattr(batch, name, getattr(batch, name).to("meta"))
    return batch


def test_an_unchecked_decode_step_never_reads_the_device_back(ours: MistralForward) -> None:
    # Meta tensors have no values: any read back to the host (.item(), .tolist(),
    # nonzero, a bool of a tensor) raises. A decode step that runs on them cannot
    # sync, so it can be captured in a CUDA graph.
    meta = copy.deepcopy(ours).to("meta")
    assert meta.inv_freq.device.type == "meta" and meta.inv_freq.dtype == torch.float32
    kv = PagedKV.allocate(meta.config, num_blocks=8, block_size=BLOCK, dtype=torch.float32, device="meta")
    decode = make_batch(
        [Row([5], [0, 1], cached=4), Row([7], [2], cached=2)],
        block_size=BLOCK,
        padding_rows=2,
        padding_tokens=2,
    )
    assert meta(on_meta(decode), kv, check=False).shape == (4, 32000)
    with pytest.raises((RuntimeError, NotImplementedError)):  # the check reads ids: it would sync
        meta(on_meta(make_batch([Row([5], [0, 1], cached=4)], block_size=BLOCK)), kv)
    # A step with a prefill reads its rows' lengths once (it is never captured).
    prefill = make_batch([Row([5, 6, 7], [0, 1], cached=4), Row([7], [2])], block_size=BLOCK)
    with pytest.raises(NotImplementedError):
        meta(on_meta(prefill), kv, check=False)


def test_a_mixed_step_serves_decoding_rows_chunks_and_padding_alike(
    hf: MistralForCausalLM, ours: MistralForward
) -> None:
    # Two rows decode while one prompt prefills its second chunk and another its
    # first; an empty row and two unowned tokens pad the step.
    a, b, c, d = prompt(7, 15), prompt(4, 16), prompt(11, 17), prompt(6, 18)
    kv = new_cache(hf)
    ours(make_batch([Row(a[:-1], [0, 1]), Row(b[:-1], [2]), Row(c[:5], [3, 4, 5])], block_size=BLOCK), kv)
    mixed = make_batch(
        [
            Row(a[-1:], [0, 1], cached=6),
            Row(c[5:], [3, 4, 5], cached=5),
            Row(b[-1:], [2], cached=3),
            Row(d, [6, 7]),
        ],
        block_size=BLOCK,
        padding_rows=1,
        padding_tokens=2,
    )
    logits = ours(mixed, kv)
    for index, ids in enumerate([a, c, b, d]):
        torch.testing.assert_close(logits[index], reference(hf, ids), atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda batch: batch.input_ids.__setitem__(2, 32000), "token ids must lie in"),
        (lambda batch: batch.input_ids.__setitem__(0, -3), "token ids must lie in"),
        (lambda batch: setattr(batch, "max_context_len", 40000), "longer than the model's 32768"),
        (lambda batch: setattr(batch, "max_context_len", 13), "block_tables hold fewer"),
        (lambda batch: setattr(batch, "positions", batch.positions[:-1]), "must all be [T]"),
        (lambda batch: batch.positions.__setitem__(1, 6), "positions must lie in"),
        (lambda batch: batch.slot_mapping.__setitem__(1, 32 * BLOCK), "slots must lie in"),
        (lambda batch: batch.slot_mapping.__setitem__(1, -2), "slots must lie in"),
        (lambda batch: batch.block_tables.__setitem__((0, 1), 32), "blocks must lie in"),
        (lambda batch: setattr(batch, "input_ids", batch.input_ids[:0]), "at least one token"),
    ],
)
def test_bad_steps_are_refused_and_change_nothing(
    hf: MistralForCausalLM, ours: MistralForward, change: object, message: str
) -> None:
    kv = new_cache(hf)
    batch = make_batch([Row(prompt(6, seed=13), [0, 1])], block_size=BLOCK)
    change(batch)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        ours(batch, kv)
    assert all(not layer.any() for layer in kv.keys + kv.values)


def test_a_cache_for_another_shape_is_refused(hf: MistralForCausalLM, ours: MistralForward) -> None:
    other = hf.config.__class__(**{**hf.config.to_dict(), "num_hidden_layers": 1})
    kv = PagedKV.allocate(other, num_blocks=4, block_size=BLOCK, dtype=torch.float32, device="cpu")
    with pytest.raises(ValueError, match="another model shape"):
        ours(make_batch([Row([1, 2], [0])], block_size=BLOCK), kv)


def test_a_sliding_window_model_is_refused(hf: MistralForCausalLM) -> None:
    config = hf.config.__class__(**{**hf.config.to_dict(), "sliding_window": 4096})
    with pytest.raises(ValueError, match="sliding window"):
        MistralForward.from_hf(MistralForCausalLM(config))


# --- loading ---------------------------------------------------------------------------------


def test_loads_a_saved_folder_and_matches_transformers(tmp_path: Path) -> None:
    build_tiny_model().save_pretrained(tmp_path, safe_serialization=True)
    forward, name = load_forward(model_path=str(tmp_path), device="cpu", dtype="float32")
    assert name == str(tmp_path) and forward.dtype == torch.float32
    assert forward.inv_freq.dtype == torch.float32
    ids = prompt(7, seed=14)
    kv = PagedKV.allocate(forward.config, num_blocks=4, block_size=BLOCK, dtype=torch.float32, device="cpu")
    logits = forward(make_batch([Row(ids, [0, 1])], block_size=BLOCK), kv)
    torch.testing.assert_close(logits[0], reference(build_tiny_model(), ids), atol=1e-5, rtol=0)


def test_consuming_the_transformers_model_drops_its_layers_and_keeps_the_logits() -> None:
    hf_model, ids = build_tiny_model(), prompt(5, seed=19)
    expected = reference(hf_model, ids)
    forward = MistralForward.from_hf(hf_model, consume=True)
    assert all(isinstance(layer, torch.nn.Identity) for layer in hf_model.model.layers)
    kv = PagedKV.allocate(forward.config, num_blocks=2, block_size=BLOCK, dtype=torch.float32, device="cpu")
    logits = forward(make_batch([Row(ids, [0, 1])], block_size=BLOCK), kv)
    torch.testing.assert_close(logits[0], expected, atol=1e-5, rtol=0)


def test_the_tiny_model_loads_in_bfloat16_with_float32_rope() -> None:
    forward, _ = load_forward(device="cpu", dtype="bfloat16")
    assert forward.dtype == torch.bfloat16 and forward.inv_freq.dtype == torch.float32


def test_an_unloadable_folder_gives_the_engine_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EngineError, match="MODEL_PATH"):
        load_forward(model_path=str(tmp_path), device="cpu")
    with pytest.raises(EngineError, match="no such folder"):
        load_forward(model_path=str(tmp_path / "missing"), device="cpu")
