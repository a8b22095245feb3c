"""The three nodes of a timestep: predict, critique, rewrite.

predict  h_{t-1}, x_t        -> prediction        (predictor role)
critique prediction, y_t     -> feedback          (critic role: truth or judge)
rewrite  h_{t-1}, feedback   -> h_t within budget (rewriter role)

Bad model output never raises here: every parse has a bounded re-ask and a
fallback, and the memory invariant is re-checked before the state is written.
Errors that are not the model's output (a dead endpoint after its retries,
invalid input) do raise, leaving the thread resumable at the failed node.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from langchain_core.messages import BaseMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.store.base import PutOp
from langgraph.types import Command, interrupt

from llm_as_rnn.core import delta, prompts
from llm_as_rnn.core import memory as mem
from llm_as_rnn.core.calls import (
    JUDGE_FORM,
    Call,
    Form,
    ask,
    enforce_budget,
    journaled,
    predict_answer,
    rewrite_forms,
)
from llm_as_rnn.core.context import Context, coerce_context
from llm_as_rnn.core.feedback import (
    answer_text,
    fact,
    fused_feedback,
    judge_feedback,
    parse_verdict,
    truth_feedback,
    was_right,
)
from llm_as_rnn.core.state import (
    OBSERVATIONS,
    REJECTED_LIMIT,
    Feedback,
    Observation,
    RejectionKind,
    Role,
    State,
    StepRecord,
    check_targets,
    checked_target,
)
from llm_as_rnn.errors import DataError, first_line
from llm_as_rnn.runtime import namespaces, usage
from llm_as_rnn.runtime.backends import ChatBackend
from llm_as_rnn.runtime.journal import forget
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.runtime.usage import Generation
from llm_as_rnn.tasks import Task, get_task

END: Literal["__end__"] = "__end__"
"""LangGraph's END, typed for ``Command(goto=...)``."""


def context_of(runtime: Runtime[Context] | None) -> Context:
    """Return the run's context (defaults when none was given; a dict is validated)."""
    return coerce_context(runtime.context if runtime is not None else None)


def thread_id() -> str:
    """Return the thread of the running graph."""
    return str(get_config().get("configurable", {}).get("thread_id", "default"))


async def model(ctx: Context, role: Role) -> ChatBackend:
    """Return the backend serving ``role``."""
    return await aresolve(ctx.model_for(role), ctx.endpoint())


def call_for(
    runtime: Runtime[Context],
    step: int,
    backend: ChatBackend,
    role: Role,
    budget: int,
    limit: int | None = None,
) -> Call:
    """Return the step's journaled calls of ``role`` (output limits follow ``budget``)."""
    ctx = context_of(runtime)
    return journaled(runtime.store, thread_id(), step, backend, role, ctx, budget, limit)


def fit(memory: str, task: Task, budget: int, count: mem.TokenCounter) -> str:
    """Return the memory within budget; a budget below the headers' size is an error."""
    return mem.fit_to_budget(memory, task.sections, budget, count)


async def predict(
    state: State, runtime: Runtime[Context]
) -> Command[Literal["critique", "__end__"]]:
    """Predict y_t from the memory h_{t-1} and the next queued observation x_t.

    A run without observations ends here, changing nothing.
    """
    queue = OBSERVATIONS.validate_python(state.get("observations") or [])
    if not queue:
        return Command(goto=END)
    observation = queue[0]
    ctx = context_of(runtime)
    task = get_task(ctx.task)
    check_targets(task, queue, required=ctx.feedback == "supervised")  # before any model call
    predictor = await model(ctx, "predictor")
    budget = state.get("budget") or ctx.budget
    memory = fit(state.get("memory") or ctx.h0(), task, budget, predictor.count_tokens)
    step = state.get("step", 0) + 1
    await forget(runtime.store, thread_id(), step)
    shown = task.render_input(observation["input"])
    messages = prompts.predict_messages(task, memory, shown, step)
    h0_messages = None
    # The lift: the same prompt with the task's blank h_0 (not for a frozen memory: one call a step)
    if ctx.answer_mode == "choice" and not ctx.freeze:
        h0 = fit(task.initial_memory(), task, budget, predictor.count_tokens)
        h0_messages = None if h0 == memory else prompts.predict_messages(task, h0, shown, step)
    call = call_for(runtime, step, predictor, "predictor", budget)
    prediction, gens = await predict_answer(call, predictor, task, messages, ctx, h0_messages)
    if ctx.freeze and prediction.get("distribution"):
        prediction["distribution_h0"] = None  # unmeasured, not a lift of 0
    update = {
        "observations": queue[1:],
        "current": observation,
        "memory": memory,
        "budget": budget,
        "prediction": prediction,
        "feedback": None,
        "step_usage": {"predictor": usage.of_calls(gens)},
    }
    update["event"] = None  # a rewind or edit before this step is behind it now
    return Command(update=update, goto="critique")


async def critique(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Turn the prediction into feedback: vs the truth, or by an LLM judge."""
    ctx = context_of(runtime)
    task = get_task(ctx.task)
    observation = dict(state["current"] or {})
    prediction = state["prediction"]
    assert prediction is not None  # set by predict
    if ctx.feedback == "deferred" and observation.get("target") is None:
        # Interrupt first thing in the node: on resume it re-runs from here,
        # so the prediction (made by the previous node) is never recomputed.
        step = state.get("step", 0) + 1
        question = {"step": step, "input": observation["input"], "prediction": prediction}
        observation["target"] = truth(task, question)
    target = observation.get("target")
    if target is not None:
        target = task.validate_target(target)
        observation["target"] = target
    score = task.score(prediction["answer"], target)
    critic = await model(ctx, "critic")
    call = call_for(runtime, state.get("step", 0) + 1, critic, "critic", state["budget"])
    memory = state.get("memory", "")
    shown = task.render_input(observation["input"])
    answer = answer_text(task, prediction)
    if ctx.step_mode == "fused" or ctx.freeze:
        # Only the facts: the fused rewrite call critiques and rewrites at once,
        # and a frozen memory is never rewritten (no critic, no judge call).
        gens: list[Generation] = []
        # A fused judge writes its own feedback; otherwise a known truth is stated.
        known = target is not None and (ctx.freeze or ctx.feedback != "judge")
        feedback = Feedback(
            text=fact(task, answer, target, score) if known else "",
            source="truth" if known else "judge",
            correct=score.correct,
            error=score.error,
            verdict=None,
        )
    elif ctx.feedback == "judge":
        messages = prompts.judge_messages(task, memory, shown, answer)
        judge = functools.partial(call, form=JUDGE_FORM)
        reask = prompts.reask_message_verdict()
        text, verdict, gens = await ask(judge, messages, parse_verdict, reask, ctx.reask_attempts)
        feedback = judge_feedback(text, verdict, score, gens[-1].cut_off)
    else:
        assert target is not None
        messages = prompts.critique_messages(
            task, memory, shown, answer, task.render_target(target), task.outcome(score)
        )
        gens = [await call(messages)]
        stated = fact(task, answer, target, score)  # the verdict is the score's, never the model's
        feedback = truth_feedback(stated, score, gens[0].text, gens[0].cut_off)
    return {
        "current": Observation(**observation),  # type: ignore[typeddict-item]
        "feedback": feedback,
        "step_usage": usage.by_role(
            state.get("step_usage") or {}, {"critic": usage.of_calls(gens)}
        ),
    }


def truth(task: Task, question: dict[str, Any]) -> Any:
    """Pause for the truth (deferred feedback); return it once the task accepts it.

    A refused one (sent by a plain ``Command(resume=...)``) gets another pause naming
    the problem: LangGraph replays a node's resume values, so an error would recur.
    """
    while True:
        target = interrupt(question)
        try:
            return checked_target(task, target)
        except DataError as exc:
            question = {**question, "error": first_line(exc)}


async def rewrite(
    state: State, runtime: Runtime[Context]
) -> Command[Literal["predict", "__end__"]]:
    """Rewrite the memory from the feedback, then enforce budget and invariant.

    Then on to the next timestep while observations remain in the run's queue.
    """
    ctx = context_of(runtime)
    task = get_task(ctx.task)
    count = (await model(ctx, "predictor")).count_tokens
    rewriter = await model(ctx, "rewriter")
    old, budget = state["memory"], state["budget"]
    observation, prediction, feedback = state["current"], state["prediction"], state["feedback"]
    assert observation is not None
    assert prediction is not None
    assert feedback is not None
    step = state.get("step", 0) + 1
    delta_mode = ctx.rewrite_mode == "delta"
    limit = delta.OUTPUT_LIMIT if delta_mode else mem.rewrite_limit(budget, count(old))
    journaled_call = call_for(runtime, step, rewriter, "rewriter", budget, limit)
    rejected: list[tuple[str, str]] = []  # why, and what the rewrite said
    kinds: list[RejectionKind] = []  # the kind of each ``rejected`` reason
    made: list[Generation] = []
    rewrite_form, compress_form = rewrite_forms(ctx, task.sections, old, budget)

    async def call(messages: list[BaseMessage], form: Form | None = rewrite_form) -> Generation:
        made.append(await journaled_call(messages, form))
        return made[-1]

    def accept(text: str) -> str | None:
        if made and made[-1].cut_off:
            limit = made[-1].completion_tokens
            rejected.append((f"rewrite cut off at its limit of {limit} tokens", text))
            kinds.append("cut off")
            return None
        candidate = text
        if delta_mode:
            applied = delta.apply(old, text, task.sections)
            if applied.reason and applied.kind:
                rejected.append((applied.reason, text))
                kinds.append(applied.kind)
                return None
            candidate = applied.memory or ""
        verdict = mem.guard(old, candidate, task.sections, count, max_shrink=ctx.max_shrink)
        if verdict.reason and verdict.kind:
            rejected.append((verdict.reason, text))
            kinds.append(verdict.kind)
        return verdict.memory

    shown, answer = task.render_input(observation["input"]), answer_text(task, prediction)
    gens: list[Generation] = []
    new: str | None
    if ctx.freeze:
        new, enforcement = old, "frozen"  # predict fitted it: within budget
    elif ctx.step_mode == "lazy" and was_right(feedback) and count(old) <= budget:
        new, enforcement = old, "skipped"  # nothing to correct: save the call
    else:
        fused = ctx.step_mode == "fused"
        if delta_mode:
            notes = delta.render_notes(delta.notes_of(old, task.sections), task.sections)
            messages = prompts.delta_messages(
                task, notes, shown, answer, feedback["text"], budget, step, fused
            )
            reask = prompts.reask_message_ops()
        elif fused:
            messages = prompts.fused_messages(
                task, old, shown, answer, feedback["text"] or None, budget, step
            )
            reask = prompts.reask_message_memory(task)
        else:
            messages = prompts.rewrite_messages(
                task, old, shown, answer, feedback["text"], budget, step
            )
            reask = prompts.reask_message_memory(task)
        text, new, gens = await ask(call, messages, accept, reask, ctx.reask_attempts)
        if ctx.step_mode == "fused":
            feedback = fused_feedback(feedback, text, bool(gens) and gens[-1].cut_off)
        if new is None:
            new, enforcement = old, "kept"
        elif delta_mode:
            new, enforcement = delta.fit_notes(new, task.sections, budget, count)
        else:
            compress = functools.partial(call, form=compress_form)
            new, enforcement, more = await enforce_budget(new, budget, task, compress, count, ctx)
            gens += more
    if mem.invariant_violations(new, task.sections, budget, count):
        rejected.append(("the memory invariant broke after fitting", new))
        kinds.append("invariant")
        new, enforcement = fit(old, task, budget, count), "kept"  # defensive
    step_usage = usage.by_role(state.get("step_usage") or {}, {"rewriter": usage.of_calls(gens)})
    refused = rejected if enforcement == "kept" else []  # a later accepted attempt wins
    record = StepRecord(
        step=step,
        id=observation.get("id"),
        input=observation["input"],
        target=observation.get("target"),
        prediction=prediction,
        feedback=feedback,
        correct=feedback["correct"],
        memory_before=old,
        memory_after=new,
        memory_tokens=count(new),
        budget=budget,
        enforcement=enforcement,  # type: ignore[typeddict-item]
        rewrite_rejected=enforcement == "kept",
        rejection_reason="; ".join(dict.fromkeys(why for why, _ in refused)) or None,
        rejection_kind=kinds[-1] if enforcement == "kept" and kinds else None,
        rejected_rewrite=mem.rejected_attempts(refused, REJECTED_LIMIT),
        usage=step_usage,
    )
    if runtime.store is not None:
        put = PutOp(namespaces.trace(thread_id()), f"{step:06d}", dict(record), index=False)
        await runtime.store.abatch([put])
    update = {
        "memory": new,
        "feedback": feedback,
        "step": step,
        "step_usage": step_usage,
        "usage": usage.by_role(state.get("usage") or {}, step_usage),
        "last_step": record,
    }
    return Command(update=update, goto="predict" if state.get("observations") else END)
