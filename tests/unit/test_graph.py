"""The recurrent graph with deterministic models: steps, modes, guard, resume."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from llm_as_rnn import ConfigError, EndpointError, read_trace, run_sequence
from llm_as_rnn.core import memory as mem
from llm_as_rnn.core.graph import build_graph, graph
from llm_as_rnn.data import weather
from llm_as_rnn.runtime.backends import approx_tokens
from llm_as_rnn.tasks import get_task
from llm_as_rnn.testing import rule_based
from tests.conftest import make_context, make_model, rewriter_answers

TASK = get_task("weather")
SEQ = weather.window(0, 40)


def cfg(thread: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def test_module_graph_shape() -> None:
    drawn = graph.get_graph()
    assert {"predict", "critique", "rewrite"} <= set(drawn.nodes)
    edges = {(e.source, e.target) for e in drawn.edges}
    assert ("rewrite", "predict") in edges
    assert ("predict", "critique") in edges
    assert ("critique", "rewrite") in edges
    assert graph.checkpointer is None


async def test_one_step_changes_memory_and_writes_trace(persisted_graph: Any) -> None:
    g, _, store = persisted_graph
    out = await g.ainvoke({"observations": [SEQ[0]]}, cfg(), context=make_context())
    assert out["step"] == 1
    assert out["memory"] != TASK.initial_memory()
    record = out["last_step"]
    assert record["memory_before"] == TASK.initial_memory()
    assert record["memory_after"] == out["memory"]
    assert record["prediction"]["valid"] is True
    assert record["usage"]["predictor"]["calls"] == 1
    assert record["usage"]["critic"]["calls"] == 1
    assert record["usage"]["rewriter"]["calls"] == 1
    trace = await read_trace(store, "t")
    assert [r["step"] for r in trace] == [1]
    assert trace[0]["memory_after"] == out["memory"]


async def test_several_observations_in_one_run_loop(persisted_graph: Any) -> None:
    g, _, store = persisted_graph
    out = await g.ainvoke({"observations": SEQ[:4]}, cfg(), context=make_context())
    assert out["step"] == 4
    assert out["observations"] == []
    assert [r["step"] for r in await read_trace(store, "t")] == [1, 2, 3, 4]


async def test_empty_run_goes_straight_to_end(persisted_graph: Any) -> None:
    g, _, _ = persisted_graph
    out = await g.ainvoke({"observations": []}, cfg(), context=make_context())
    assert out.get("step", 0) == 0


@pytest.mark.parametrize("step_mode", ["three-call", "fused"])
@pytest.mark.parametrize(
    "garbage",
    ["", "I refuse.", "## PATTERNS\n- only one section", "\x00\ufffd\u202e" * 50],
)
async def test_collapse_guard_keeps_old_memory(
    garbage: str, step_mode: str, persisted_graph: Any
) -> None:
    g, _, store = persisted_graph
    ctx = make_context(make_model(rewriter_answers(garbage)), step_mode=step_mode)
    out = await g.ainvoke({"observations": [SEQ[0]]}, cfg(), context=ctx)
    record = out["last_step"]
    assert record["rewrite_rejected"] is True
    assert record["enforcement"] == "kept"
    assert record["rejection_reason"]
    assert out["memory"] == TASK.initial_memory()
    # one re-ask (reask_attempts=1) before giving up
    assert record["usage"]["rewriter"]["calls"] == 2
    assert (await read_trace(store, "t"))[0]["rewrite_rejected"] is True


async def test_over_budget_rewrite_is_compressed_then_truncated(persisted_graph: Any) -> None:
    g, _, _ = persisted_graph
    long = mem.render_memory(
        {s: "- " + "very long lesson " * 200 for s in TASK.sections}, TASK.sections
    )
    ctx = make_context(make_model(rewriter_answers(long)), budget=120, compress_attempts=2)
    out = await g.ainvoke({"observations": [SEQ[0]]}, cfg(), context=ctx)
    record = out["last_step"]
    assert record["enforcement"] == "truncate"  # the rewriter never fits, so truncation
    assert record["usage"]["rewriter"]["calls"] == 3  # rewrite + 2 compress attempts
    assert approx_tokens(out["memory"]) <= 120
    assert mem.missing_sections(out["memory"], TASK.sections) == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rewrite=st.one_of(
        st.text(max_size=400),
        st.builds(
            lambda bodies: mem.render_memory(
                dict(zip(TASK.sections, bodies, strict=True)), TASK.sections
            ),
            st.lists(st.text(max_size=2000), min_size=3, max_size=3),
        ),
        st.just("## PATTERNS\n" + "x " * 5000),
    ),
    budget=st.integers(min_value=20, max_value=300),
    step_mode=st.sampled_from(["three-call", "fused", "lazy"]),
)
async def test_invariant_holds_for_any_rewrite(rewrite: str, budget: int, step_mode: str) -> None:
    g = build_graph(InMemorySaver(), InMemoryStore())
    ctx = make_context(make_model(rewriter_answers(rewrite)), budget=budget, step_mode=step_mode)
    out = await g.ainvoke({"observations": SEQ[:2]}, cfg(), context=ctx)
    assert out["step"] == 2
    assert mem.invariant_violations(out["memory"], TASK.sections, budget, approx_tokens) == []


async def test_budget_too_small_is_refused(persisted_graph: Any) -> None:
    g, _, _ = persisted_graph
    with pytest.raises(ConfigError, match="too small"):
        await g.ainvoke({"observations": [SEQ[0]], "budget": 3}, cfg(), context=make_context())


async def test_judge_mode_needs_no_target(persisted_graph: Any) -> None:
    g, _, _ = persisted_graph
    unlabeled = [{"input": o["input"]} for o in SEQ[:2]]
    out = await g.ainvoke(
        {"observations": unlabeled}, cfg(), context=make_context(feedback="judge")
    )
    record = out["last_step"]
    assert record["feedback"]["source"] == "judge"
    assert record["feedback"]["text"].startswith("Judge verdict: ")
    assert record["correct"] is None
    assert out["memory"] != TASK.initial_memory()


async def test_judge_mode_never_shows_the_target(persisted_graph: Any) -> None:
    seen: list[str] = []
    base = rule_based(0)

    def spy(messages: list[BaseMessage]) -> str:
        seen.append("\n".join(str(m.content) for m in messages))
        answer = base(messages)
        return "Answer: sun" if answer.startswith("Answer:") else answer

    g, _, _ = persisted_graph
    obs = {"input": "a day with nothing to see", "target": "snow"}
    out = await g.ainvoke(
        {"observations": [obs]},
        cfg(),
        context=make_context(make_model(spy), feedback="judge", task="weather-labels"),
    )
    assert not any(
        "snow"
        in prompt.replace("sun, rain, fog, drizzle or snow", "").replace(
            "sun, rain, fog, drizzle, snow", ""
        )
        for prompt in seen
    )
    assert out["last_step"]["correct"] is not None  # still scored for evaluation


async def test_deferred_mode_interrupts_then_learns(persisted_graph: Any) -> None:
    g, _, store = persisted_graph
    calls: list[int] = []
    base = rule_based(0)

    def counting(messages: list[BaseMessage]) -> str:
        calls.append(1)
        return base(messages)

    ctx = make_context(make_model(counting), feedback="deferred")
    first = await g.ainvoke({"observations": [{"input": SEQ[0]["input"]}]}, cfg(), context=ctx)
    interrupt = first["__interrupt__"][0].value
    assert interrupt["prediction"]["valid"] is True
    assert interrupt["step"] == 1
    assert (await g.aget_state(cfg())).next == ("critique",)
    assert len(calls) == 1  # only the prediction so far
    done = await g.ainvoke(Command(resume="light rain"), cfg(), context=ctx)
    assert done["step"] == 1
    assert done["last_step"]["target"] == "light rain"
    assert done["memory"] != TASK.initial_memory()
    assert len(calls) == 3  # the prediction was not recomputed on resume
    assert len(await read_trace(store, "t")) == 1


async def test_run_sequence_deferred_matches_supervised() -> None:
    results = []
    for mode in ("supervised", "deferred"):
        g = build_graph(InMemorySaver(), InMemoryStore())
        r = await run_sequence(g, SEQ[:4], thread_id="x", context=make_context(feedback=mode))
        results.append(r.memory)
    assert results[0] == results[1]


class Crash(RuntimeError):
    pass


def crashing_once(at_call: int) -> Any:
    """Rule-based, but the ``at_call``-th call raises once (a crash mid-step)."""
    base, count = rule_based(0), [0]

    def respond(messages: list[BaseMessage]) -> str:
        count[0] += 1
        if count[0] == at_call:
            raise Crash(f"crash at call {at_call}")
        return base(messages)

    return respond


@pytest.mark.parametrize("at_call", [1, 5, 9, 12])  # predict, critique, rewrite of various steps
async def test_crash_mid_step_then_resume_matches_uninterrupted(at_call: int) -> None:
    reference_graph = build_graph(InMemorySaver(), InMemoryStore())
    reference = await run_sequence(reference_graph, SEQ[:6], thread_id="s", context=make_context())

    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    ctx = make_context(make_model(crashing_once(at_call)))
    with pytest.raises(EndpointError, match=f"Crash: crash at call {at_call}") as caught:
        await run_sequence(g, SEQ[:6], thread_id="s", context=ctx)
    assert isinstance(caught.value.__cause__, Crash)  # the model's error, kept as the cause
    resumed = await run_sequence(g, SEQ[:6], thread_id="s", context=ctx)
    assert resumed.steps_done == 6
    assert resumed.memory == reference.memory
    trace = await read_trace(store, "s")
    assert [r["step"] for r in trace] == [1, 2, 3, 4, 5, 6]


async def test_state_does_not_grow_with_t() -> None:
    saver = InMemorySaver()
    g = build_graph(saver, InMemoryStore())
    sizes = {}
    for t in (5, 40):
        await run_sequence(g, SEQ[:t], thread_id="g", context=make_context())
        state = (await g.aget_state(cfg("g"))).values
        sizes[t] = len(json.dumps(state, default=str))
        tup = await saver.aget_tuple(cfg("g"))
        assert tup is not None
        sizes[f"ckpt{t}"] = len(saver.serde.dumps_typed(tup.checkpoint)[1])
    assert sizes[40] < 1.5 * sizes[5], sizes
    assert sizes["ckpt40"] < 1.5 * sizes["ckpt5"], sizes


async def test_resume_skips_finished_steps() -> None:
    calls = [0]
    base = rule_based(0)

    def counting(messages: list[BaseMessage]) -> str:
        calls[0] += 1
        return base(messages)

    g = build_graph(InMemorySaver(), InMemoryStore())
    ctx = make_context(make_model(counting))
    await run_sequence(g, SEQ[:5], thread_id="r", context=ctx, steps=3)
    assert calls[0] == 9
    finished: list[int] = []
    again = await run_sequence(
        g, SEQ[:5], thread_id="r", context=ctx, on_step=lambda r: finished.append(r["step"])
    )
    assert finished == [4, 5]
    assert again.steps_done == 5
    assert calls[0] == 15


def calls_per_step(trace: list[dict[str, Any]]) -> float:
    return sum(sum(u["calls"] for u in r["usage"].values()) for r in trace) / len(trace)


@pytest.mark.parametrize("feedback", ["supervised", "judge"])
async def test_calls_per_step_by_step_mode(feedback: str) -> None:
    measured = {}
    for mode in ("three-call", "fused", "lazy"):
        store = InMemoryStore()
        g = build_graph(InMemorySaver(), store)
        ctx = make_context(step_mode=mode, feedback=feedback)
        await run_sequence(g, SEQ[:20], thread_id="c", context=ctx)
        trace = await read_trace(store, "c")
        measured[mode] = calls_per_step(trace)
        for record in trace:
            assert (
                mem.invariant_violations(
                    record["memory_after"], TASK.sections, ctx.budget, approx_tokens
                )
                == []
            )
    assert measured["three-call"] == 3.0
    assert measured["fused"] == 2.0
    assert measured["lazy"] < 3.0


async def test_fused_feedback_and_lazy_skip_are_recorded() -> None:
    store = InMemoryStore()
    g = build_graph(InMemorySaver(), store)
    await run_sequence(g, SEQ[:6], thread_id="f", context=make_context(step_mode="fused"))
    fused = await read_trace(store, "f")
    assert all("Predicted" in r["feedback"]["text"] for r in fused)
    assert all("critic" not in r["usage"] or r["usage"]["critic"]["calls"] == 0 for r in fused)
    g2 = build_graph(InMemorySaver(), store)
    await run_sequence(g2, SEQ[:20], thread_id="l", context=make_context(step_mode="lazy"))
    lazy = await read_trace(store, "l")
    skipped = [r for r in lazy if r["enforcement"] == "skipped"]
    assert skipped, "the fake model is right sometimes"
    assert all(r["correct"] for r in skipped)
    assert all(r["memory_after"] == r["memory_before"] for r in skipped)
