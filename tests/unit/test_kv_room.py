"""Key/value states appended in place (``runtime.room``): the same states as ``torch.cat``.

The layer is driven like the model drives it (``update`` per pass) and like
the decoder's cache surgery does (rows cut, padding trimmed, ``crop``), and
compared with transformers' ``DynamicLayer`` at every step; views handed out
earlier must never change. Decoding with it is compared with decoding
through plain ``DynamicLayer``s on a tiny random Llama (``tests/conftest.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from llm_as_rnn.runtime import room
from llm_as_rnn.runtime.decode import DecodeSettings, decode
from llm_as_rnn.runtime.prefill import plain_cache
from llm_as_rnn.runtime.room import RoomyLayer, roomy
from tests.conftest import tiny_llama

SHAPE = (3, 2, 0, 4)  # rows, heads, positions, head size


def states(positions: int, rows: int = 3, seed: int = 0) -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(seed)
    shape = (rows, SHAPE[1], positions, SHAPE[3])
    return torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)


def test_appends_equal_concatenation_and_copy_rarely() -> None:
    plain, roomy_layer = DynamicLayer(), RoomyLayer()
    grown, room = 0, None
    for step, width in enumerate([37, 1, 1, 5, *[1] * 150]):
        k, v = states(width, seed=step)
        expected = plain.update(k, v)
        got = roomy_layer.update(k, v)
        assert torch.equal(got[0], expected[0])
        assert torch.equal(got[1], expected[1])
        assert roomy_layer.get_seq_length() == plain.get_seq_length()
        assert roomy_layer.room is not None
        grown += roomy_layer.room is not room  # a new pair of buffers (not an address: reused)
        room = roomy_layer.room
    # 194 positions appended in 154 passes: the buffers grew a few times, not every pass
    assert 1 < grown <= 4


def test_views_handed_out_never_change() -> None:
    layer = RoomyLayer()
    layer.update(*states(10))
    before = layer.keys.clone(), layer.values.clone()
    kept = layer.keys, layer.values  # a view someone holds
    layer.crop(-4)  # its last 4 positions are dropped, then new ones appended
    layer.update(*states(3, seed=1))
    layer.update(*states(1, seed=2))
    assert torch.equal(kept[0], before[0])
    assert torch.equal(kept[1], before[1])
    assert layer.get_seq_length() == 10 - 4 + 3 + 1


@pytest.mark.parametrize("surgery", ["select rows", "trim padding", "replace"])
def test_states_replaced_from_outside_are_appended_to_not_written_over(surgery: str) -> None:
    plain, layer = DynamicLayer(), RoomyLayer()
    for which in (plain, layer):
        which.update(*states(12))
        which.update(*states(1, seed=1))
    held = layer.keys.clone()
    for which in (plain, layer):
        if surgery == "select rows":
            which.batch_select_indices(torch.tensor([0, 2]))
        elif surgery == "trim padding":
            which.keys, which.values = which.keys[:, :, 3:], which.values[:, :, 3:]
        else:
            which.keys, which.values = which.keys.clone(), which.values.clone()
    snapshot = layer.keys
    rows = plain.keys.shape[0]
    for step in range(3):
        k, v = states(1, rows=rows, seed=10 + step)
        expected, got = plain.update(k, v), layer.update(k, v)
        assert torch.equal(got[0], expected[0])
        assert torch.equal(got[1], expected[1])
    if surgery == "replace":
        assert torch.equal(snapshot, held)  # the outside tensor was not written into


def test_a_roomy_copy_leaves_the_original_layer_alone() -> None:
    original = DynamicLayer()
    original.update(*states(6))
    keys = original.keys.clone()
    copy = RoomyLayer.of(original)
    copy.update(*states(2, seed=3))
    assert torch.equal(original.keys, keys)
    assert original.get_seq_length() == 6
    assert copy.get_seq_length() == 8


def test_a_roomy_cache_is_plain_and_only_dynamic_layers_turn() -> None:
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicSlidingWindowLayer

    k, v = states(4)
    cache = DynamicCache(ddp_cache_data=[(k, v), (k, v)])
    roomy(cache)
    assert all(type(layer) is RoomyLayer for layer in cache.layers)
    assert plain_cache(cache)
    sliding = DynamicSlidingWindowLayer(sliding_window=8)
    cache.layers.append(sliding)
    roomy(cache)
    assert cache.layers[-1] is sliding  # a subclass keeps its own rules
    assert not plain_cache(cache)


def test_decoding_equals_decoding_with_concatenated_states(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny_llama()
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13], [5, 6, 7, 20], [30, 31, 32, 33, 34, 35]]
    settings = [DecodeSettings(90), DecodeSettings(70, temperature=0.7), DecodeSettings(80)]
    seeds = [None, 4, None]

    def run() -> list[list[int]]:
        rows = decode(model, prompts, settings, end_tokens=set(), pad=0, seeds=seeds)
        return [r.tokens for r in rows]

    appended: list[int] = []
    update = RoomyLayer.update

    def counting(self: RoomyLayer, *args: Any, **kwargs: Any) -> Any:
        appended.append(1)
        return update(self, *args, **kwargs)

    monkeypatch.setattr(RoomyLayer, "update", counting)
    with_room = run()
    assert appended, "the decoder appends through RoomyLayer"
    monkeypatch.setattr(room, "roomy", lambda cache: cache)
    assert run() == with_room
