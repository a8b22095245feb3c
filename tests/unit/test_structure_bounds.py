"""A structure's size follows its call: the cap and the budget lambda (pure, fake models).

A full rewrite may fill what its cap allows (a memory grows to its budget and a large
one can be rewritten whole, above the collapse guard's threshold); a compress answer
fits the budget it compresses to; a fused judge's verdict is constrained; a cap too
small for a structure is said once, naming the smallest that fits.
"""

from __future__ import annotations

import json
import logging

import pytest
from langchain_core.messages import HumanMessage

from llm_as_rnn.core import memory as mem
from llm_as_rnn.core.calls import JUDGE_FORM, journaled, rewrite_forms
from llm_as_rnn.core.context import make_context as from_options
from llm_as_rnn.core.feedback import VERDICTS, fused_feedback
from llm_as_rnn.runtime.schema import json_schema, text_of
from llm_as_rnn.runtime.structure import lark, skeleton, smallest_cap, worst_tokens
from tests.conftest import RecordingBackend, grammar_accepts, make_context

SECTIONS = ["PATTERNS", "RECENT ERRORS", "RULES OF THUMB"]
OLD = "## PATTERNS\n- [n1] x\n## RECENT ERRORS\n## RULES OF THUMB"


@pytest.mark.parametrize("budget", [256, 1024, 4096])
@pytest.mark.parametrize("share", [0.1, 0.7, 1.0])
def test_a_full_rewrite_may_be_as_large_as_the_memory_it_rewrites(
    budget: int, share: float
) -> None:
    """Whatever lambda and the memory's size: the skeleton holds the old memory whole.

    So the collapse guard (a rewrite under a quarter of the old memory is a collapse)
    never rejects every answer the structure admits.
    """
    old_tokens = int(share * budget)
    ctx = make_context(rewrite_mode="full", budget=budget)
    rewrite, _ = rewrite_forms(ctx, SECTIONS, OLD, budget)
    shape = rewrite(mem.rewrite_limit(budget, old_tokens))
    assert shape is not None
    assert worst_tokens(shape) >= old_tokens
    assert worst_tokens(shape) <= mem.rewrite_limit(budget, old_tokens)  # ends within its cap


def test_the_bullets_grow_with_the_cap() -> None:
    small, large = skeleton(SECTIONS, 400), skeleton(SECTIONS, 4000)
    assert small is not None
    assert large is not None
    assert large.bullets > 8 * small.bullets // 2
    assert worst_tokens(large) > 0.9 * 4000


@pytest.mark.parametrize("budget", [100, 128, 256, 1024])
def test_a_compress_answer_fits_the_budget_it_compresses_to(budget: int) -> None:
    ctx = make_context(rewrite_mode="full", budget=budget)
    _, compress = rewrite_forms(ctx, SECTIONS, OLD, budget)
    shape = compress(mem.rewrite_limit(budget, 2 * budget))
    assert shape is not None
    assert worst_tokens(shape) <= budget


@pytest.mark.parametrize("mode", ["delta", "full"])
def test_a_fused_judge_answer_states_one_of_the_verdicts(mode: str) -> None:
    ctx = make_context(rewrite_mode=mode, step_mode="fused", feedback="judge")
    rewrite, _ = rewrite_forms(ctx, SECTIONS, OLD, 512)
    shape = rewrite(256)
    assert shape is not None
    body = (
        "NONE\n"
        if mode == "delta"
        else "## PATTERNS\n- a\n## RECENT ERRORS\n- b\n## RULES OF THUMB\n- c\n"
    )
    assert not grammar_accepts(shape, f"Feedback: the front came early\n{body}")
    for verdict in VERDICTS:
        answer = f"Feedback: Verdict: {verdict}. the front came early\n{body}"
        assert grammar_accepts(shape, answer), lark(shape)
        judged = fused_feedback(
            {"text": "", "source": "judge", "correct": None, "error": None, "verdict": None},
            answer,
        )
        assert judged["verdict"] == verdict
        assert judged["text"] == f"Judge verdict: {verdict}. the front came early"
    schema = json_schema(shape)  # an endpoint's structured outputs constrain it too
    assert schema["properties"]["verdict"]["enum"] == list(VERDICTS)
    said = dict.fromkeys(schema["required"], "x") | {"verdict": "implausible", "feedback": "late"}
    said |= {"operations": []} if mode == "delta" else {"sections": {s: ["b"] for s in SECTIONS}}
    text = text_of(shape, json.dumps(said))
    assert text is not None
    assert text.splitlines()[0] == "Feedback: Verdict: implausible. late"
    truth = make_context(rewrite_mode=mode, step_mode="fused")  # truth known: no verdict asked
    plain = rewrite_forms(truth, SECTIONS, OLD, 512)[0](256)
    assert plain is not None
    assert grammar_accepts(plain, f"Feedback: the front came early\n{body}")


@pytest.mark.parametrize(
    ("mode", "role"), [("full", "rewriter"), ("delta", "rewriter"), ("judge", "critic")]
)
async def test_a_cap_too_small_for_a_structure_is_said_once_with_the_cap_that_fits(
    mode: str, role: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llm_as_rnn.runtime.backends._WARNED", set())  # once per process: anew
    ctx = from_options(
        model="fake", rewrite_mode="delta" if mode == "delta" else "full", max_new_tokens=20
    )
    form = JUDGE_FORM if mode == "judge" else rewrite_forms(ctx, SECTIONS, OLD, 512)[0]
    smallest = smallest_cap(form.build)
    assert smallest is not None
    assert form(smallest) is not None
    assert form(smallest - 1) is None
    backend = RecordingBackend()
    call = journaled(None, "t", 1, backend, role, ctx, 512)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="llm_as_rnn"):
        await call([HumanMessage("x")], form)
        await call([HumanMessage("x")], form)
    assert backend.seen == [None, None]  # free text: nothing fits 20 tokens
    said = [m for m in caplog.messages if form.kind in m]
    assert len(said) == 1, caplog.messages
    assert f"at least {smallest}" in said[0]
    assert "20 tokens" in said[0]
