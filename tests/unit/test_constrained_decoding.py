"""Constrained memory updates on a local model: every answer parses and none is cut off.

A tiny random Llama and a byte-level BPE tokenizer built here (``tests/conftest.py``,
nothing downloaded) stand in for a real model: random weights pick the worst
tokens a grammar allows, so what parses here parses for any model. Section titles
are any the task check accepts, not a list known to be safe. Rows with
and without a grammar share one running batch, greedy and sampled.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage

from llm_as_rnn.core import delta
from llm_as_rnn.core import memory as mem
from llm_as_rnn.core.feedback import VERDICTS, fused_feedback
from llm_as_rnn.runtime.decode import DecodeSettings, Row, RunningBatch
from llm_as_rnn.runtime.local import LocalHFBackend
from llm_as_rnn.runtime.spec import CallPolicy, Sampling
from llm_as_rnn.runtime.structure import Operations, Skeleton, operations, skeleton
from llm_as_rnn.testing import FunctionChatModel
from tests.conftest import RecordingBackend, accepted_titles, bpe_tokenizer, tiny_llama

pytest.importorskip("llguidance", reason="constrained decoding needs llguidance (the hf extra)")
from llm_as_rnn.runtime.grammar import Constraint, llg_tokenizer

WORDS = ["PATTERNS", "RECENT ERRORS", "RULES OF THUMB", "WIND", "ÉTÉ NOTES", "X"]


@pytest.fixture(scope="module", params=[0, 85], ids=["vocab", "padded vocab"])
def kit(request: pytest.FixtureRequest) -> tuple[Any, Any, Any]:
    """Real models often pad their vocabulary past the tokenizer's: logits wider than it."""
    tokenizer = bpe_tokenizer(" ".join(WORDS))
    model = tiny_llama(vocab_size=len(tokenizer) + request.param)
    return tokenizer, model, llg_tokenizer(tokenizer, {tokenizer.eos_token_id})


titles = st.one_of(st.sampled_from(WORDS), st.text(st.characters(codec="utf-8"), max_size=12))
memories = st.builds(
    lambda sections, notes: (sections, notes),
    st.lists(titles, min_size=1, max_size=4, unique_by=str.upper).filter(accepted_titles),
    st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=30), max_size=6),
)


def memory_of(sections: list[str], notes: list[str]) -> str:
    bodies = {s: "" for s in sections}
    for i, note in enumerate(notes):
        name = sections[i % len(sections)]
        bodies[name] += f"- [n{3 * i + 1}] {' '.join(note.split()) or 'x'}\n"
    return mem.render_memory(bodies, sections)


def check(structure: Operations | Skeleton, old: str, text: str, count: Any) -> None:
    sections = list(structure.sections)
    if structure.lead:
        source = "judge" if structure.verdicts else "truth"
        stated = fused_feedback(
            {"text": "", "source": source, "correct": False, "error": None, "verdict": None},
            text,
        )
        assert stated["text"], text
        assert (stated["verdict"] in VERDICTS) is bool(structure.verdicts), text
    if isinstance(structure, Operations):
        assert delta.apply(old, text, sections).reason is None, text
    else:
        reason = mem.guard(old, text, sections, count).reason
        assert reason is None or reason.startswith("drastic shrink"), (reason, text)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    memory=memories,
    full=st.booleans(),
    lead=st.booleans(),
    judge=st.booleans(),
    cap=st.integers(40, 260),
    temperature=st.sampled_from([0.0, 1.0, 2.0]),
    seed=st.integers(0, 2**31),
)
def test_every_constrained_answer_parses_and_ends_within_its_cap(
    kit: tuple[Any, Any, Any],
    memory: tuple[list[str], list[str]],
    full: bool,
    lead: bool,
    judge: bool,
    cap: int,
    temperature: float,
    seed: int,
) -> None:
    tokenizer, model, llg = kit
    sections, notes = memory
    old = memory_of(sections, notes)
    ids = [n for items in delta.notes_of(old, sections).values() for n, _ in items]
    verdicts = VERDICTS if lead and judge else ()
    built = (
        skeleton(sections, cap, lead, verdicts)
        if full
        else operations(sections, ids, cap, lead, verdicts=verdicts)
    )
    if built is None:  # the cap cannot hold one short note: free text (tested below)
        return
    end = {tokenizer.eos_token_id}
    prompt = tokenizer("<user>Rewrite the notes.<assistant>").input_ids
    batch = RunningBatch(model, end, tokenizer.pad_token_id)
    constrained = [
        Row(
            prompt,
            DecodeSettings(cap, temperature),
            seed + i,
            constraint=Constraint(llg, built, end),
        )
        for i in range(2)
    ]
    free = [Row(prompt[1:], DecodeSettings(cap // 2, temperature, 0.9), seed)]
    batch.admit([constrained[0], free[0]])
    batch.step()
    batch.admit([constrained[1]])  # joins mid-way
    batch.run_to_end()
    for row in constrained:
        answer = row.result()
        assert not answer.cut_off
        assert len(row.tokens) <= cap
        assert max(row.tokens) < len(tokenizer)  # never a padding id past the tokenizer's
        text = tokenizer.decode(answer.tokens, skip_special_tokens=True)
        check(built, old, text, lambda t: len(tokenizer.encode(t)))
    assert free[0].result().tokens  # the row without a grammar decoded alongside


def test_the_bounds_fit_the_cap_and_name_only_the_memorys_sections_and_ids() -> None:
    from llm_as_rnn.runtime.structure import lark, worst_tokens

    ops = operations(["A B", "C"], [4, 12], 120)
    assert ops is not None
    assert worst_tokens(ops) <= 120
    grammar = lark(ops)
    assert '"n4" | "n12"' in grammar
    assert '"A B" | "C"' in grammar
    assert '"EDIT "' not in lark(operations(["A"], [], 120) or ops)  # no notes: nothing to edit
    assert operations(["A"], [1], 12) is None  # not even one short note fits
    more = operations(["A"], [1], 4000)
    assert more is not None
    assert more.max_ops == 3
    shape = skeleton(["ONE", "TWO"], 200, lead=True)
    assert shape is not None
    assert worst_tokens(shape) <= 200
    text = lark(shape)
    assert text.index("## ONE") < text.index("## TWO")
    assert text.startswith('start: "Feedback: "')
    assert skeleton(["ONE", "TWO"], 30) is None


async def test_a_structured_call_through_the_local_backend_is_whole(kit: Any) -> None:
    tokenizer, model, _ = kit
    backend = LocalHFBackend(FunctionChatModel(respond=lambda _: ""), "tiny", tokenizer, model)
    shape = skeleton(["PATTERNS", "WIND"], 90)
    assert shape is not None
    messages = [HumanMessage("Rewrite the notes.")]
    gen = await backend.generate(messages, Sampling(max_new_tokens=90), CallPolicy(), shape)
    assert not gen.cut_off
    assert mem.missing_sections(gen.text, ["PATTERNS", "WIND"]) == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, True),
        ({"preset": "paper"}, False),
        ({"preset": "paper", "structured": True}, True),
        ({"structured": False}, False),
    ],
)
async def test_the_rewrite_call_is_structured_unless_switched_off(
    options: dict[str, Any], expected: bool
) -> None:
    from llm_as_rnn.core.calls import journaled, rewrite_forms
    from llm_as_rnn.core.context import make_context

    ctx = make_context(model="fake", rewrite_mode="delta", **options)
    assert ctx.structured is expected
    old = "## PATTERNS\n- [n2] dry\n## RECENT ERRORS\n## RULES OF THUMB"
    backend = RecordingBackend()
    call = journaled(None, "t", 1, backend, "rewriter", ctx, 512, delta.OUTPUT_LIMIT)
    rewrite, _ = rewrite_forms(ctx, ["PATTERNS", "RECENT ERRORS", "RULES OF THUMB"], old, 512)
    await call([HumanMessage("x")], rewrite)
    await call([HumanMessage("x")])  # a call without a form: free text
    if expected:
        assert isinstance(backend.seen[0], Operations)
        assert backend.seen[0].notes == (2,)
    else:
        assert backend.seen[0] is None
    assert backend.seen[1] is None


def test_logits_narrower_than_the_tokenizer_leave_a_row_free_rather_than_fail(
    kit: tuple[Any, Any, Any],
) -> None:
    """A tokenizer with tokens the model lacks: if nothing the grammar allows is a logit,
    and no end token is either, the row is left free (it runs to its cap), not an error."""
    import torch

    from llm_as_rnn.runtime.grammar import mask_rows

    tokenizer, _, llg = kit
    built = skeleton(["PATTERNS"], 64, False, ())
    assert built is not None
    end = len(tokenizer) - 1  # an end token past the model's 3 logits
    constraint = Constraint(llg, built, {end})
    logits = torch.zeros((1, 3))
    mask_rows(logits, [constraint])
    assert torch.equal(logits, torch.zeros((1, 3)))
