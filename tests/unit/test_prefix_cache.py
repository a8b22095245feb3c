"""The prefix cache: a call runs only what no cached prefix covers, and answers do not change.

The store is checked on synthetic states (each token's state names its
prompt position and token, so a wrong splice shows); answers, label scores
and grammar-constrained rows on a tiny random Llama built here (nothing
downloaded), with the cache and without.

Greedy and seeded answers are compared exactly. Label scores get a tolerance
of 1e-4 nats: a prompt run from a cached prefix is two passes over fewer
tokens each, whose matrix products may sum in another order than one pass,
which moves a log-probability by about 1e-6 (a near-tie could in principle
flip a token; the prompts here have none).
"""

from __future__ import annotations

from typing import Any

import pytest

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime.decode import DecodeSettings, Row, RunningBatch
from llm_as_rnn.runtime.prefixes import PREFIX_CACHE_ENV, Prefixes, nbytes, prefix_cache_bytes
from llm_as_rnn.runtime.scoring import run_prompt, score_chunk
from tests.conftest import bpe_tokenizer, tiny_llama

torch = pytest.importorskip("torch", reason="the prefix cache holds torch tensors (the hf extra)")

TOKEN_BYTES = 2 * 2 * 3 * 4 * 4  # 2 layers x keys and values x 3 heads x 4 dims x float32


def states(ids: list[int]) -> Any:
    """Synthetic states of a prompt: position p of token t holds 1000 * p + t everywhere."""
    row = torch.tensor([1000.0 * p + t for p, t in enumerate(ids)])
    plane = row[None, None, :, None].expand(1, 3, len(ids), 4).contiguous()
    return tuple((plane.clone(), -plane.clone()) for _ in range(2))


def test_a_lookup_returns_the_states_of_the_longest_stored_prefix() -> None:
    cache = Prefixes(10**6)
    system = [1, 2, 3, 4, 5]
    first, second = [*system, 6, 7, 8], [*system, 9, 10]
    cache.add(first, states(first))
    cache.add(second, states(second))  # splits the first prompt's run after the system prompt
    assert cache.size == 10 * TOKEN_BYTES  # the system prompt is held once
    for prompt in (first, second, [*system, 6, 11], [*system, 12]):
        hit = cache.lookup(prompt, len(prompt) - 1)
        expected = common_length(prompt, [first, second], len(prompt) - 1)
        assert hit.length == expected
        for got, want in zip(hit.layers, states(prompt[:expected]), strict=True):
            assert torch.equal(got[0], want[0])
            assert torch.equal(got[1], want[1])
    assert cache.lookup([9, 1, 2], 2).length == 0


def common_length(prompt: list[int], stored: list[list[int]], limit: int) -> int:
    best = 0
    for other in stored:
        n = 0
        while n < min(len(other), limit) and other[n] == prompt[n]:
            n += 1
        best = max(best, n)
    return best


def test_entries_are_copies_no_caller_can_change() -> None:
    cache = Prefixes(10**6)
    prompt = [1, 2, 3, 4]
    given = states(prompt)
    cache.add(prompt, given)
    given[0][0].fill_(0)  # the caller's tensors change after storing
    hit = cache.lookup(prompt, 4)
    hit.layers[0][0].fill_(-1)  # and the caller changes what a lookup gave it
    again = cache.lookup(prompt, 4)
    assert torch.equal(again.layers[0][0], states(prompt)[0][0])


def test_the_bytes_held_never_exceed_the_capacity_and_the_least_recent_go_first() -> None:
    cache = Prefixes(20 * TOKEN_BYTES)
    prompts = [[i, i + 100, 7, 8, 9, 10, 11] for i in range(12)]  # 7 tokens each, none shared
    kept = prompts[0]
    for prompt in prompts:
        cache.add(prompt, states(prompt))
        cache.lookup(kept, len(kept))  # the first prompt stays in use
        assert cache.size == sum(nbytes(n.layers) for n in cache.nodes()) <= cache.capacity
    assert cache.peak <= cache.capacity
    assert cache.lookup(kept, 7).length == 7
    assert cache.lookup(prompts[-1], 7).length == 7  # the newest
    assert cache.lookup(prompts[1], 7).length == 0  # evicted: least recently used
    cache.add(list(range(200, 230)), states(list(range(200, 230))))  # larger than the cache
    assert cache.lookup(list(range(200, 230)), 30).length == 0
    assert cache.size <= cache.capacity
    cache.clear()
    assert cache.size == 0
    assert cache.lookup(kept, 7).length == 0


def test_the_size_comes_from_the_environment_and_zero_turns_it_off(monkeypatch: Any) -> None:
    monkeypatch.setenv(PREFIX_CACHE_ENV, "0")
    assert prefix_cache_bytes() == 0
    off = Prefixes(prefix_cache_bytes())
    off.add([1, 2, 3], states([1, 2, 3]))
    assert off.lookup([1, 2, 3], 3).length == 0
    monkeypatch.setenv(PREFIX_CACHE_ENV, "3")
    assert prefix_cache_bytes() == 3 * 2**20
    monkeypatch.setenv(PREFIX_CACHE_ENV, "lots")
    with pytest.raises(ConfigError, match=f"{PREFIX_CACHE_ENV} must be an integer >= 0"):
        prefix_cache_bytes()
    monkeypatch.delenv(PREFIX_CACHE_ENV)
    assert prefix_cache_bytes() == 256 * 2**20


def contextual(model: Any) -> Any:
    """Scale a tiny Llama's projections five-fold: at the default initialisation its
    answers hardly depend on tokens before the last, so a wrong prefix would pass unseen."""
    with torch.no_grad():
        for name, weights in model.named_parameters():
            if name.endswith("proj.weight"):
                weights.mul_(5)
    return model


@pytest.fixture(scope="module")
def model() -> Any:
    return contextual(tiny_llama())


SYSTEM = list(range(5, 45))  # a 40-token "system prompt" every prompt starts with
PROMPTS = [
    [*SYSTEM, 50, 51, 52, 53, 54, 55],
    [*SYSTEM, 50, 51, 52, 60],
    [*SYSTEM, 70, 71, 72, 73, 74, 75, 76, 77],
    [80, 81, 82, *SYSTEM],
    [*SYSTEM, 50, 51, 52, 53, 54, 55, 56, 57],
]
SETTINGS = [
    DecodeSettings(8),
    DecodeSettings(6, temperature=0.9, top_p=0.9),
    DecodeSettings(5, temperature=1.3),
    DecodeSettings(7),
    DecodeSettings(9),
]


def answers(model: Any, prefixes: Prefixes | None, rounds: int = 2) -> tuple[list[list[int]], int]:
    """Decode every prompt ``rounds`` times, rows joining mid-way; return answers, tokens run."""
    run: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda _, args, kwargs: run.append(kwargs["input_ids"].numel()), with_kwargs=True
    )
    batch = RunningBatch(model, set(), 0, prefixes)
    rows = []
    try:
        for _ in range(rounds):
            for start in range(0, len(PROMPTS), 2):
                new = [
                    Row(list(PROMPTS[i]), SETTINGS[i], 100 + i)
                    for i in range(start, min(start + 2, len(PROMPTS)))
                ]
                batch.admit(new)
                batch.step()
                rows += new
            batch.run_to_end()
    finally:
        hook.remove()
    return [r.tokens for r in rows], sum(run)


def test_cached_answers_equal_uncached_ones_greedy_and_seeded(model: Any) -> None:
    plain, plain_run = answers(model, None)
    cache = Prefixes(10**7)
    cached, cached_run = answers(model, cache)
    assert cached == plain
    assert cache.size > 0
    # the second round runs one token of each prompt, the first round's shared system prompt once
    assert cached_run < plain_run - len(SYSTEM) * len(PROMPTS)


def test_a_cache_too_small_for_every_prompt_keeps_answers_and_its_bound(model: Any) -> None:
    probe = Prefixes(10**7)
    run_prompt(model, [1, 2, 3], probe)
    cache = Prefixes(60 * probe.size // 3)  # 60 tokens: the system prompt and a few rests
    cached, _ = answers(model, cache, rounds=3)
    plain, _ = answers(model, None, rounds=3)
    assert cached == plain
    assert 0 < cache.peak <= cache.capacity


def test_label_scores_from_a_cached_prefix_equal_a_whole_run(model: Any) -> None:
    labels = [[60], [61, 62], [63, 64, 65, 66]]
    cache = Prefixes(10**7)
    for prompt in PROMPTS + PROMPTS:  # the second time every prompt but its last token is cached
        cached = score_chunk(model, run_prompt(model, prompt, cache), labels)
        whole = score_chunk(model, run_prompt(model, prompt), labels)
        assert cached == pytest.approx(whole, abs=1e-4)
    assert cache.lookup(PROMPTS[0], len(PROMPTS[0])).length == len(PROMPTS[0])


def test_grammar_constrained_rows_are_unchanged_by_the_cache() -> None:
    pytest.importorskip("llguidance", reason="constrained decoding needs llguidance (the hf extra)")
    from llm_as_rnn.runtime.grammar import Constraint, llg_tokenizer
    from llm_as_rnn.runtime.structure import skeleton

    tokenizer = bpe_tokenizer("PATTERNS WIND")
    model = contextual(tiny_llama(vocab_size=len(tokenizer)))
    llg, end = llg_tokenizer(tokenizer, {tokenizer.eos_token_id}), {tokenizer.eos_token_id}
    shape = skeleton(["PATTERNS", "WIND"], 60)
    prompts = [
        tokenizer(f"<system>Keep notes.<user>Rewrite the notes, day {day}.<assistant>").input_ids
        for day in range(3)
    ]

    def decoded(prefixes: Prefixes | None) -> list[list[int]]:
        batch = RunningBatch(model, end, tokenizer.pad_token_id, prefixes)
        rows = []
        for i, prompt in enumerate(prompts + prompts):
            row = Row(prompt, DecodeSettings(60, 0.8 * (i % 2)), i)
            row.constraint = Constraint(llg, shape, end)
            batch.admit([row])
            batch.step()
            rows.append(row)
        batch.run_to_end()
        return [r.tokens for r in rows]

    cache = Prefixes(10**7)
    assert decoded(cache) == decoded(None)
    assert cache.size > 0
