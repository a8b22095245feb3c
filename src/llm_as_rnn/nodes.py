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

import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from langchain_core.messages import AIMessage, BaseMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.store.base import PutOp
from langgraph.types import Command, interrupt

from llm_as_rnn import memory as mem
from llm_as_rnn import prompts
from llm_as_rnn.context import Context
from llm_as_rnn.journal import Journal, forget
from llm_as_rnn.models import ChatBackend, Generation, aresolve
from llm_as_rnn.state import (
    OBSERVATIONS,
    Feedback,
    Observation,
    Prediction,
    Role,
    State,
    StepRecord,
    Usage,
    merge_usage,
)
from llm_as_rnn.tasks import Score, Task, get_task

TRACE_NAMESPACE = "llm_as_rnn"
"""Step records go to the store under ``(TRACE_NAMESPACE, "trace", thread_id)``."""

T = TypeVar("T")

END: Literal["__end__"] = "__end__"
"""LangGraph's END, typed for ``Command(goto=...)``."""


def trace_namespace(thread_id: str) -> tuple[str, ...]:
    """Return the store namespace holding a thread's step records."""
    return (TRACE_NAMESPACE, "trace", thread_id)


def context_of(runtime: Runtime[Context] | None) -> Context:
    """Return the run's context (defaults when none was given)."""
    ctx = runtime.context if runtime is not None else None
    return ctx if isinstance(ctx, Context) else Context()


def fit_to_budget(memory: str, task: Task, budget: int, count: mem.TokenCounter) -> str:
    """Return the memory within budget (truncating if needed); check the budget."""
    floor = mem.min_budget(task.sections, count)
    if budget < floor:
        raise ValueError(
            f"budget {budget} is too small: the {task.name} memory headers alone need "
            f"{floor} tokens; use a budget of at least {floor}"
        )
    return mem.truncate(memory, task.sections, budget, count)


def usage_of(gens: list[Generation]) -> Usage:
    """Return the usage of a list of generations."""
    return Usage(
        calls=len(gens),
        prompt_tokens=sum(g.prompt_tokens for g in gens),
        completion_tokens=sum(g.completion_tokens for g in gens),
        latency_s=round(sum(g.latency_s for g in gens), 6),
        retries=sum(g.retries for g in gens),
    )


Call = Callable[[list[BaseMessage]], Awaitable[Generation]]


def caller(journal: Journal, backend: ChatBackend, role: Role, ctx: Context) -> Call:
    """Return a journaled call of ``backend`` with the role's sampling."""

    async def call(messages: list[BaseMessage]) -> Generation:
        return await journal.generate(backend, role, messages, ctx.sampling[role], ctx)

    return call


def thread_id() -> str:
    """Return the thread of the running graph."""
    return str(get_config().get("configurable", {}).get("thread_id", "default"))


async def ask(
    call: Call,
    messages: list[BaseMessage],
    parse: Callable[[str], T | None],
    reask: BaseMessage,
    attempts: int,
) -> tuple[str, T | None, list[Generation]]:
    """Call a model and parse its answer, re-asking up to ``attempts`` times.

    Returns the last text, its parse (None when every attempt failed) and the
    generations made.
    """
    gens = []
    for _ in range(1 + attempts):
        gen = await call(messages)
        gens.append(gen)
        parsed = parse(gen.text)
        if parsed is not None:
            return gen.text, parsed, gens
        messages = [*messages, AIMessage(gen.text or "(empty)"), reask]
    return gens[-1].text, None, gens


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
    predictor = await aresolve(ctx.model_for("predictor"), ctx)
    budget = state.get("budget") or ctx.budget
    memory = fit_to_budget(
        state.get("memory") or task.initial_memory(), task, budget, predictor.count_tokens
    )
    step = state.get("step", 0) + 1
    await forget(runtime.store, thread_id(), step)
    journal = Journal(runtime.store, thread_id(), step)
    messages = prompts.predict_messages(task, memory, task.render_input(observation["input"]), step)
    text, answer, gens = await ask(
        caller(journal, predictor, "predictor", ctx),
        messages,
        task.parse,
        prompts.reask_message(task),
        ctx.reask_attempts,
    )
    update = {
        "observations": queue[1:],
        "current": observation,
        "memory": memory,
        "budget": budget,
        "prediction": Prediction(text=text, answer=answer, valid=answer is not None),
        "feedback": None,
        "step_usage": {"predictor": usage_of(gens)},
    }
    return Command(update=update, goto="critique")


_VERDICT = re.compile(r"verdict\W*(implausible|plausible)", re.I)


def parse_verdict(text: str) -> str | None:
    """Read a judge's verdict: ``plausible``, ``implausible`` or None."""
    match = _VERDICT.search(text)
    if match:
        return match.group(1).lower()
    lowered = text.lower()
    if "implausible" in lowered or "not plausible" in lowered:
        return "implausible"
    if "plausible" in lowered:
        return "plausible"
    return None


def _fact(task: Task, answer: str, target: Any, score: Score) -> str:
    """State what the truth says of a prediction, without a model."""
    return f"Predicted {answer}; the truth was {task.render_target(target)}: {task.outcome(score)}."


def _answer_text(task: Task, prediction: Prediction) -> str:
    if prediction["valid"]:
        return task.render_target(prediction["answer"])
    return f"(no valid answer; raw reply: {prediction['text'][:200]!r})"


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
        observation["target"] = interrupt(
            {
                "step": state.get("step", 0) + 1,
                "input": observation["input"],
                "prediction": prediction,
            }
        )
    target = observation.get("target")
    if target is not None:
        target = task.validate_target(target)
        observation["target"] = target
    score = task.score(prediction["answer"], target)
    critic = await aresolve(ctx.model_for("critic"), ctx)
    journal = Journal(runtime.store, thread_id(), state.get("step", 0) + 1)
    call = caller(journal, critic, "critic", ctx)
    memory = state.get("memory", "")
    shown = task.render_input(observation["input"])
    answer = _answer_text(task, prediction)
    if ctx.step_mode == "fused":
        # The rewrite call critiques and rewrites at once; here only the facts.
        gens: list[Generation] = []
        feedback_text = _fact(task, answer, target, score) if ctx.feedback != "judge" else ""
        source: Literal["truth", "judge"] = "judge" if ctx.feedback == "judge" else "truth"
        verdict = None
    elif ctx.feedback == "judge":
        messages = prompts.judge_messages(task, memory, shown, answer)
        text, verdict, gens = await ask(
            call, messages, parse_verdict, prompts.reask_message_verdict(), ctx.reask_attempts
        )
        reason = text.strip().splitlines()[-1][:400] if text.strip() else ""
        feedback_text = f"Judge verdict: {verdict or 'unclear'}. {reason}".strip()
        source = "judge"
    else:
        assert target is not None
        fact = _fact(task, answer, target, score)
        messages = prompts.critique_messages(
            task, memory, shown, answer, task.render_target(target), task.outcome(score)
        )
        gen = await call(messages)
        gens = [gen]
        note = " ".join(gen.text.split())[:600]
        feedback_text = f"{fact} {note}".strip()
        source = "truth"
        verdict = None
    feedback = Feedback(
        text=feedback_text, source=source, correct=score.correct, error=score.error, verdict=verdict
    )
    return {
        "current": Observation(**observation),  # type: ignore[typeddict-item]
        "feedback": feedback,
        "step_usage": merge_usage(state.get("step_usage") or {}, {"critic": usage_of(gens)}),
    }


async def rewrite(
    state: State, runtime: Runtime[Context]
) -> Command[Literal["predict", "__end__"]]:
    """Rewrite the memory from the feedback, then enforce budget and invariant.

    Then on to the next timestep while observations remain in the run's queue.
    """
    ctx = context_of(runtime)
    task = get_task(ctx.task)
    count = (await aresolve(ctx.model_for("predictor"), ctx)).count_tokens
    rewriter = await aresolve(ctx.model_for("rewriter"), ctx)
    old, budget = state["memory"], state["budget"]
    observation, prediction, feedback = state["current"], state["prediction"], state["feedback"]
    assert observation is not None
    assert prediction is not None
    assert feedback is not None
    step = state.get("step", 0) + 1
    journal = Journal(runtime.store, thread_id(), step)
    call = caller(journal, rewriter, "rewriter", ctx)
    rejected: list[str] = []

    def accept(text: str) -> str | None:
        verdict = mem.guard(old, text, task.sections, count, max_shrink=ctx.max_shrink)
        if verdict.reason:
            rejected.append(verdict.reason)
        return verdict.memory

    shown, answer = task.render_input(observation["input"]), _answer_text(task, prediction)
    gens: list[Generation] = []
    new: str | None
    if ctx.step_mode == "lazy" and was_right(feedback) and count(old) <= budget:
        new, enforcement = old, "skipped"  # nothing to correct: save the call
    else:
        if ctx.step_mode == "fused":
            messages = prompts.fused_messages(
                task, old, shown, answer, feedback["text"] or None, budget, step
            )
        else:
            messages = prompts.rewrite_messages(
                task, old, shown, answer, feedback["text"], budget, step
            )
        text, new, gens = await ask(
            call, messages, accept, prompts.reask_message_memory(task), ctx.reask_attempts
        )
        if ctx.step_mode == "fused":
            feedback = fused_feedback(feedback, text)
        if new is None:
            new, enforcement = old, "kept"
        else:
            new, enforcement, more = await _enforce_budget(new, budget, task, call, count, ctx)
            gens += more
    if mem.invariant_violations(new, task.sections, budget, count):
        new, enforcement = fit_to_budget(old, task, budget, count), "kept"  # defensive
    usage = merge_usage(state.get("step_usage") or {}, {"rewriter": usage_of(gens)})
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
        rejection_reason=rejected[-1] if enforcement == "kept" and rejected else None,
        usage=usage,
    )
    if runtime.store is not None:
        put = PutOp(trace_namespace(thread_id()), f"{step:06d}", dict(record), index=False)
        await runtime.store.abatch([put])
    update = {
        "memory": new,
        "feedback": feedback,
        "step": step,
        "step_usage": usage,
        "usage": merge_usage(state.get("usage") or {}, usage),
        "last_step": record,
    }
    return Command(update=update, goto="predict" if state.get("observations") else END)


def was_right(feedback: Feedback) -> bool:
    """Return whether a step needs no correction (right, or judged plausible)."""
    if feedback["correct"] is not None:
        return bool(feedback["correct"])
    return feedback.get("verdict") == "plausible"


_FEEDBACK_LINE = re.compile(r"^\W*feedback\W*:\s*(.+)$", re.I | re.M)


def fused_feedback(feedback: Feedback, text: str) -> Feedback:
    """Complete the feedback from a fused call's ``Feedback:`` line."""
    match = _FEEDBACK_LINE.search(text)
    note = " ".join(match.group(1).split())[:400] if match else ""
    if feedback["source"] == "judge":
        verdict = parse_verdict(note)
        return Feedback(
            text=f"Judge verdict: {verdict or 'unclear'}. {note}".strip(),
            source="judge",
            correct=feedback["correct"],
            error=feedback["error"],
            verdict=verdict,
        )
    return Feedback(**{**feedback, "text": f"{feedback['text']} {note}".strip()})


async def _enforce_budget(
    memory: str,
    budget: int,
    task: Task,
    call: Call,
    count: mem.TokenCounter,
    ctx: Context,
) -> tuple[str, str, list[Generation]]:
    """Bring an accepted rewrite within budget: compress calls, then truncation."""
    if count(memory) <= budget:
        return memory, "rewrite", []
    gens = []
    current = memory
    for _ in range(ctx.compress_attempts):
        messages = prompts.compress_messages(task, current, count(current), budget)
        gen = await call(messages)
        gens.append(gen)
        # Shrink is judged against a budget-sized memory: compressing is meant to shrink.
        reference = fit_to_budget(current, task, budget, count)
        verdict = mem.guard(reference, gen.text, task.sections, count, max_shrink=ctx.max_shrink)
        if verdict.memory is None:
            continue
        current = verdict.memory
        if count(current) <= budget:
            return current, "compress", gens
    return fit_to_budget(current, task, budget, count), "truncate", gens
