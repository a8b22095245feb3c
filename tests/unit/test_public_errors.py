"""No raw ValueError, KeyError, TypeError or ValidationError crosses the public API.

Every callable of ``llm_as_rnn.__all__`` that takes input is called with bad
input here and must raise the right ``LlmAsRnnError`` with a one-line message.
The cases are keyed by public name: a new public name without a case fails
``test_every_public_callable_has_a_case``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from typing_extensions import is_typeddict

import llm_as_rnn
from llm_as_rnn import (
    ClassificationTask,
    ConfigError,
    Context,
    DataError,
    LlmAsRnnError,
    OnlineLearner,
    RegressionTask,
    Sampling,
    StateError,
    build_graph,
    get_task,
    open_storage,
    read_memory_file,
    read_trace,
    run_sequence,
)
from tests.conftest import task_class

DATA_TYPES = {
    "Feedback",
    "Observation",
    "Prediction",
    "State",
    "StepRecord",  # TypedDicts: plain JSON records, not checked on construction
    "Score",
    "SequenceResult",  # dataclasses the package returns
    "Task",  # abstract: its subclasses below are the cases
    "MemoryFile",  # a dataclass: read_memory_file below checks what it reads
}
"""Public names that are data types, not calls that take input."""

GOOD = {"model": "fake", "budget": 300}


def graph() -> Any:
    return build_graph(InMemorySaver(), InMemoryStore())


async def enter_storage(db: Any) -> None:
    async with open_storage(db):
        pass


def learner_calls() -> list[tuple[type[LlmAsRnnError], Callable[[], Any]]]:
    learner = OnlineLearner(GOOD)
    return [
        (ConfigError, lambda: OnlineLearner({"budget": 0})),
        (ConfigError, lambda: learner.apredict("u", "   ")),
        (ConfigError, lambda: learner.apredict(7, "a day")),  # type: ignore[arg-type]
        (StateError, lambda: learner.alearn("u", "dry")),
        (StateError, lambda: learner.adiscard("u")),
        (ConfigError, lambda: learner.amemory(None)),  # type: ignore[arg-type]
        (ConfigError, lambda: learner.ahistory(3)),  # type: ignore[arg-type]
        (ConfigError, lambda: learner.adiscarded(3)),  # type: ignore[arg-type]
        (ConfigError, lambda: enter_learner({"task": "nope"})),
        (ConfigError, lambda: learner.apredict("u", float("nan"))),
        (ConfigError, lambda: learner.apredict("u", {"a": float("inf")})),
        *[(ConfigError, lambda t=t: learner.apredict(t, "a day")) for t in BAD_THREADS],
        (StateError, closed_learner),
    ]


BAD_THREADS = ("", "   ", "a\x00b", "line\nbreak", "x" * 1001)


def closed_learner() -> None:
    learner = OnlineLearner.open(":memory:", GOOD)
    learner.close()
    learner.memory("u")


def task_cases() -> list[tuple[type[LlmAsRnnError], Callable[[], Any]]]:
    labels = {"name": "t", "description": "d", "labels": ("a", "b")}
    bad_tasks = [
        {**labels, "synonyms": {"x": "c"}},  # a synonym of no label
        {**labels, "synonyms": ["a"]},
        {**labels, "synonyms": {1: "a"}},
        {**labels, "sections": ("ONE\nTWO",)},
        {**labels, "sections": ("ONE\u2028TWO",)},  # a line break str.splitlines knows
        {**labels, "sections": ("NOTES", "NOTES: WIND")},  # an ADD line would not read back
        {**labels, "sections": ("A\u202eB",)},
        {**labels, "sections": "NOTES"},  # a string, not a tuple of titles
        {**labels, "sections": ("A", "a")},
        {**labels, "name": "t\n"},
        {**labels, "name": " t"},
        {**labels, "labels": ("a\nb", "c")},
        {**labels, "labels": (" a", "b")},
        {**labels, "lagged_truth": "today"},
    ]
    number = {"name": "n", "description": "d"}
    bad_regressions = [{**number, "unit": 3}, {**number, "percent": "yes"}]
    return [
        *[(ConfigError, lambda a=a: task_class("Bad", **a)()) for a in bad_tasks],
        *[
            (ConfigError, lambda a=a: task_class("Bad", RegressionTask, **a)())
            for a in bad_regressions
        ],
    ]


async def enter_learner(context: Any) -> None:
    async with OnlineLearner.aopen(":memory:", context):
        pass


async def learner_then_bad_target() -> None:
    learner = OnlineLearner(GOOD)
    await learner.apredict("u", "a day")
    await learner.alearn("u", "chargeback")


CASES: dict[str, list[tuple[type[LlmAsRnnError], Callable[[], Any]]]] = {
    "Context": [
        (ConfigError, lambda: Context(budget=0)),
        (ConfigError, lambda: Context(feedback="sometimes")),
        (ConfigError, lambda: Context(sampling={"critic": {"temperature": 9}})),
        (ConfigError, lambda: Context(model="nonsense:spec")),
        (ConfigError, lambda: Context(no_such_field=1)),
        (ConfigError, lambda: Context.model_validate([1])),
        (ConfigError, lambda: Context.model_validate({"budget": "x"})),
        (ConfigError, lambda: Context.model_validate_json("[1]")),
        (ConfigError, lambda: Context(task="sp500", answer_mode="choice")),  # no labels to score
        (ConfigError, lambda: Context(initial_memory="pyproject.toml")),  # a path, not the text
        (ConfigError, lambda: Context(initial_memory=7)),  # type: ignore[arg-type]
    ],
    "Sampling": [
        (ConfigError, lambda: Sampling(top_p=0)),
        (ConfigError, lambda: Sampling(max_new_tokens="512")),
        (ConfigError, lambda: Sampling.model_validate({"top_p": 0})),
    ],
    "build_graph": [
        (ConfigError, lambda: build_graph("saver.db")),  # type: ignore[arg-type]
        (ConfigError, lambda: build_graph(None, "store")),  # type: ignore[arg-type]
    ],
    "run_sequence": [
        (ConfigError, lambda: run_sequence(build_graph(), [{"input": "x"}], thread_id="t")),
        (ConfigError, lambda: run_sequence(graph(), [{"input": ""}], thread_id="t")),
        (ConfigError, lambda: run_sequence(graph(), "abc", thread_id="t")),  # type: ignore[arg-type]
        (ConfigError, lambda: run_sequence(graph(), [], thread_id=1)),  # type: ignore[arg-type]
        (ConfigError, lambda: run_sequence(graph(), [], thread_id="t", steps=-1)),
        (ConfigError, lambda: run_sequence(graph(), [], thread_id="t", context={"budget": -1})),
        (ConfigError, lambda: run_sequence(graph(), None, thread_id="t")),  # type: ignore[arg-type]
        (ConfigError, lambda: run_sequence(graph(), [], thread_id="t", on_step=3)),  # type: ignore[arg-type]
        (ConfigError, lambda: run_sequence(graph(), [], thread_id="t", context=3)),  # type: ignore[arg-type]
        (ConfigError, lambda: run_sequence(graph(), [], thread_id="")),
        (ConfigError, lambda: run_sequence(graph(), [], thread_id="a\x00")),
        (
            ConfigError,
            lambda: run_sequence(
                graph(), [{"input": "x", "target": "dry"}], thread_id="t", context=GOOD, budget=5
            ),
        ),
        (
            DataError,
            lambda: run_sequence(
                graph(), [{"input": "x", "target": "snow"}], thread_id="t", context=GOOD
            ),
        ),
    ],
    "read_memory_file": [
        (DataError, lambda: read_memory_file("no-such-memory.json")),
        (DataError, lambda: read_memory_file(".")),
    ],
    "read_trace": [
        (ConfigError, lambda: read_trace(None, "t")),  # type: ignore[arg-type]
        (ConfigError, lambda: read_trace(InMemoryStore(), 5)),  # type: ignore[arg-type]
    ],
    "open_storage": [
        (ConfigError, lambda: enter_storage("http://example.invalid/db")),
        (ConfigError, lambda: enter_storage("")),
        (ConfigError, lambda: enter_storage(None)),
        (ConfigError, lambda: enter_storage(3)),
    ],
    "OnlineLearner": [
        *learner_calls(),
        (DataError, learner_then_bad_target),
        (ConfigError, lambda: OnlineLearner(Context(model="fake", feedback="judge"))),
        (DataError, lambda: OnlineLearner(GOOD, initial_memory="pyproject.toml")),  # a path
    ],
    "get_task": [
        (ConfigError, lambda: get_task("no-such-task")),
        (ConfigError, lambda: get_task(5)),  # type: ignore[arg-type]
        (ConfigError, lambda: get_task(["weather"])),  # type: ignore[arg-type]
    ],
    "ClassificationTask": [
        (ConfigError, lambda: task_class("Upper", name="t", description="d", labels=("A",))()),
        (ConfigError, lambda: task_class("NoLabels", name="t", description="d")()),
        (DataError, lambda: get_task("weather").validate_target("chargeback")),
        *task_cases(),
    ],
    "RegressionTask": [
        (ConfigError, lambda: task_class("Unnamed", RegressionTask, description="d")()),
        (DataError, lambda: get_task("sp500").validate_target("ten")),
    ],
}


def public_callables() -> set[str]:
    errors = {n for n in llm_as_rnn.__all__ if isinstance(getattr(llm_as_rnn, n), type)
              and issubclass(getattr(llm_as_rnn, n), BaseException)}  # fmt: skip
    return set(llm_as_rnn.__all__) - DATA_TYPES - errors


def test_every_public_callable_has_a_case() -> None:
    assert public_callables() == set(CASES)
    for name in DATA_TYPES:  # truly data: TypedDicts or dataclasses (or the abstract Task)
        kind = getattr(llm_as_rnn, name)
        assert (
            is_typeddict(kind)
            or hasattr(kind, "__dataclass_fields__")
            or (inspect.isabstract(kind))
        ), name


def test_every_method_of_the_learner_is_covered() -> None:
    public = {n for n in vars(OnlineLearner) if not n.startswith("_") and n != "close"}
    async_twins = {n for n in public if n.startswith("a") and n[1:] in public}
    assert {"aopen", "apredict", "alearn", "adiscard", "amemory", "ahistory", "adiscarded"} == (
        async_twins
    )  # the sync twins run the same code: covered through these


async def outcome(call: Callable[[], Any]) -> Any:
    result = call()
    return await result if inspect.isawaitable(result) else result


CALLS = [(name, kind, call) for name, calls in CASES.items() for kind, call in calls]


@pytest.mark.parametrize(
    ("name", "kind", "call"), CALLS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CALLS)]
)
async def test_bad_input_is_a_package_error_in_one_line(
    name: str, kind: type[LlmAsRnnError], call: Callable[[], Any], tmp_path: Path
) -> None:
    with pytest.raises(LlmAsRnnError) as caught:
        await outcome(call)
    assert isinstance(caught.value, kind), f"{name}: {caught.value!r}"
    message = str(caught.value)
    assert message.strip(), name
    assert "\n" not in message, f"{name}: {message}"


def test_a_dict_context_is_still_coerced_by_langgraph() -> None:
    from langgraph.pregel.main import _coerce_context

    assert _coerce_context(Context, {"budget": 77, "model": "fake"}).budget == 77
    with pytest.raises(ConfigError, match=r"^invalid budget: "):
        _coerce_context(Context, {"budget": 0})


def test_classification_labels_are_named_in_a_bad_target() -> None:
    task = task_class("Helpdesk", name="helpdesk", description="d", labels=("billing", "bug"))()
    assert isinstance(task, ClassificationTask)
    with pytest.raises(DataError) as caught:
        task.validate_target("chargeback")
    assert str(caught.value) == (
        "target 'chargeback' is not one of billing, bug (labels match case-insensitively)"
    )
    assert task.validate_target(" BILLING ") == "billing"


def test_library_messages_name_no_command_line_flag() -> None:
    from llm_as_rnn.runtime import leases, sqlite

    for module in (leases, sqlite):  # the CLI adds its flags' wording itself
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        assert "--thread" not in source, module.__name__
        assert "another --db" not in source, module.__name__
