"""How a node talks to a model: journaled calls, and parse with bounded re-asks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from langchain_core.messages import AIMessage, BaseMessage
from langgraph.store.base import BaseStore

from llm_as_rnn.core import delta, prompts
from llm_as_rnn.core import memory as mem
from llm_as_rnn.core.choice import choose
from llm_as_rnn.core.context import Context
from llm_as_rnn.core.feedback import JUDGE_FIELDS, VERDICTS
from llm_as_rnn.core.memory import output_limit
from llm_as_rnn.core.state import Prediction, Role
from llm_as_rnn.runtime import structure
from llm_as_rnn.runtime.backends import ChatBackend, warn_once
from llm_as_rnn.runtime.journal import Journal
from llm_as_rnn.runtime.structure import Structure
from llm_as_rnn.runtime.usage import Generation
from llm_as_rnn.tasks import ClassificationTask, Task

T = TypeVar("T")


@dataclass(frozen=True)
class Form:
    """The structure of a kind of answer, given its token cap (None: free text)."""

    kind: str
    """What is answered, in words for a warning (``full rewrites``)."""
    build: Callable[[int], Structure | None]

    def __call__(self, cap: int) -> Structure | None:
        """Return the structure of an answer of at most ``cap`` tokens (None: none fits)."""
        return self.build(cap)

    def warn_unfit(self, cap: int) -> None:
        """Say once that answers capped at ``cap`` are free text, naming the cap that fits."""
        smallest = structure.smallest_cap(self.build)
        fix = (
            f"raise --max-new-tokens to at least {smallest}"
            if smallest is not None
            else "the memory's budget is too small for it"
        )
        warn_once(
            f"structure:{self.kind}",
            f"warning: {self.kind} may write {cap} tokens, too few for their structure: "
            f"their structure is off (free text, read by the parser); {fix}",
        )


class Call(Protocol):
    """One model call of a role: messages in, a ``Generation`` out (``form``: its structure)."""

    def __call__(
        self, messages: list[BaseMessage], form: Form | None = None
    ) -> Awaitable[Generation]:
        """Make the call."""
        ...


def journaled(
    store: BaseStore | None,
    thread_id: str,
    step: int,
    backend: ChatBackend,
    role: Role,
    ctx: Context,
    budget: int | None = None,
    limit: int | None = None,
) -> Call:
    """Return calls of ``backend`` for ``role`` whose answers the step's journal keeps.

    A role without a token cap (the rewriter's default) may write ``limit``
    tokens, by default ``output_limit(budget)``: enough for a full memory. A
    call given a ``form`` is structured to fit that cap (``ctx.structured``).
    """
    journal = Journal(store, thread_id, step)
    sampling = ctx.sampling[role].capped(limit or output_limit(budget or ctx.budget))
    policy = ctx.call_policy()

    async def call(messages: list[BaseMessage], form: Form | None = None) -> Generation:
        prompt = prompts.ordered(messages, ctx.prompt_order)
        cap = sampling.max_new_tokens
        shape = None
        if form is not None and ctx.structured and cap is not None:
            shape = form(cap)
            if shape is None:
                form.warn_unfit(cap)
        return await journal.generate(backend, role, prompt, sampling, policy, shape)

    return call


def rewrite_forms(
    ctx: Context, sections: Sequence[str], memory: str, budget: int
) -> tuple[Form, Form]:
    """Return the structures of a step's rewrite call and of its compress calls.

    Delta mode: operations on ``memory``'s own sections and note ids; full
    mode: the section skeleton. A fused call opens with its ``Feedback:`` line,
    a fused judge's with its verdict. A compress answer is sized to ``budget``
    (the budget it compresses to), whatever its cap.
    """
    lead = ctx.step_mode == "fused"
    verdicts = VERDICTS if lead and ctx.feedback == "judge" else ()
    ids = [n for notes in delta.notes_of(memory, sections).values() for n, _ in notes]

    def rewrite(cap: int) -> Structure | None:
        if ctx.rewrite_mode == "delta":
            return structure.operations(sections, ids, cap, lead, verdicts=verdicts)
        return structure.skeleton(sections, cap, lead, verdicts)

    kind = f"{ctx.rewrite_mode} rewrites"
    compress = Form("compress calls", lambda cap: structure.skeleton(sections, min(cap, budget)))
    return Form(kind, rewrite), compress


JUDGE_FORM = Form("judge answers", lambda cap: structure.judgement(VERDICTS, JUDGE_FIELDS, cap))
"""The structure of a judge's answer (its verdict and fields)."""


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


async def ask_answer(
    call: Call, task: Task, messages: list[BaseMessage], attempts: int
) -> tuple[str, Any, list[Generation]]:
    """Ask for the task's answer (re-asking for the answer line); its parse may be None."""
    return await ask(call, messages, task.parse, prompts.reask_message(task), attempts)


async def predict_answer(
    call: Call,
    backend: ChatBackend,
    task: Task,
    messages: list[BaseMessage],
    ctx: Context,
    h0_messages: list[BaseMessage] | None = None,
) -> tuple[Prediction, list[Generation]]:
    """Predict: label probabilities in choice mode, else generate and parse.

    Choice mode needs a classification task and a backend that can score;
    otherwise the answer is generated and parsed, with re-asks.
    ``h0_messages`` (the prompt with the initial memory) are scored too.
    """
    if ctx.answer_mode == "choice" and isinstance(task, ClassificationTask):
        order = ctx.prompt_order
        h0 = prompts.ordered(h0_messages, order) if h0_messages is not None else None
        chosen = await choose(
            backend, task.labels, prompts.ordered(messages, order), h0, ctx.call_policy()
        )
        if chosen is not None:
            return chosen
    text, answer, gens = await ask_answer(call, task, messages, ctx.reask_attempts)
    return Prediction(text=text, answer=answer, valid=answer is not None), gens


async def enforce_budget(
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
        if gen.cut_off:  # an incomplete memory is never kept
            continue
        # Shrink is judged against a budget-sized memory: compressing is meant to shrink.
        reference = mem.fit_to_budget(current, task.sections, budget, count)
        verdict = mem.guard(reference, gen.text, task.sections, count, max_shrink=ctx.max_shrink)
        if verdict.memory is None:
            continue
        current = verdict.memory
        if count(current) <= budget:
            return current, "compress", gens
    return mem.fit_to_budget(current, task.sections, budget, count), "truncate", gens
