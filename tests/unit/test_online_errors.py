"""An OnlineLearner driven through every error in any order: each one leaves the thread as it was.

A seeded random walk over good calls and bad ones (a target that is not a
label, a blank or non-JSON input, predict twice, learn or discard with nothing
pending, other settings, ...), in memory and on a SQLite file. After each
error the thread's checkpoint, pending prediction and store are exactly as
before, and a predict + learn then succeeds.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from llm_as_rnn import ConfigError, Context, DataError, OnlineLearner, StateError
from llm_as_rnn.frontends.online import LearnerStateError

LABELS = ("dry", "light rain", "heavy rain")
GOOD_TARGETS = ("dry", "Light Rain", " heavy  rain ")  # labels match case-insensitively
BAD_TARGETS: tuple[Any, ...] = ("chargeback", "", None, 3, True, ["dry"], {"label": "dry"})
BAD_INPUTS: tuple[Any, ...] = ("", "   ", "\u200b", None, [], {"a": ""}, {1, 2}, object())
THREAD = "stream/1.a"  # names are data


def context(model: str = "fake") -> Context:
    return Context(model=model, budget=300)


@asynccontextmanager
async def learner_on(where: str, tmp_path: Path) -> AsyncIterator[OnlineLearner]:
    if where == "memory":
        yield OnlineLearner(context())
    else:
        async with OnlineLearner.aopen(str(tmp_path / "online.db"), context()) as learner:
            yield learner


async def fingerprint(learner: OnlineLearner, thread: str) -> Any:
    """Everything a call could change: the checkpoints, the pause, the whole store."""
    config: Any = {"configurable": {"thread_id": thread}}
    state = await learner.graph.aget_state(config)
    checkpoints = [s.config["configurable"]["checkpoint_id"]
                   async for s in learner.graph.aget_state_history(config)]  # fmt: skip
    store = []
    for namespace in await learner.store.alist_namespaces(limit=1000):
        for item in await learner.store.asearch(namespace, limit=1000):
            store.append((namespace, item.key, item.value))
    return (
        checkpoints,
        state.next,
        [i.value for i in state.interrupts],
        state.values,
        sorted(store, key=lambda entry: (entry[0], entry[1])),
    )


class Walk:
    """The learner under test and what its thread should look like."""

    def __init__(self, learner: OnlineLearner, rng: random.Random) -> None:
        self.learner = learner
        self.other = OnlineLearner(  # same storage, another model
            context("fake:1"), checkpointer=learner.graph.checkpointer, store=learner.store
        )
        self.rng = rng
        self.pending: Any = None
        self.steps = 0
        self.discards = 0
        self.values_before_predict: dict[str, Any] = {}

    async def expect_error(
        self, kind: type[Exception], call: Callable[[], Awaitable[Any]], what: str
    ) -> None:
        before = await fingerprint(self.learner, THREAD)
        with pytest.raises(kind) as caught:
            await call()
        message = str(caught.value)
        assert message, what
        assert "\n" not in message, what
        assert await fingerprint(self.learner, THREAD) == before, f"{what} changed the thread"
        await self.recover()

    async def recover(self) -> None:
        """A predict + learn (or a learn of the pending step) works after any error."""
        if self.pending is None:
            await self.predict()
        await self.learn()

    async def predict(self) -> None:
        text = f"day {self.rng.randrange(10**6)}"
        self.values_before_predict = dict(
            (await self.learner.graph.aget_state({"configurable": {"thread_id": THREAD}})).values
        )
        prediction = await self.learner.apredict(THREAD, text, id=f"id-{self.steps}")
        assert prediction["answer"] in LABELS
        self.pending = text

    async def learn(self) -> None:
        target = self.rng.choice(GOOD_TARGETS)
        record = await self.learner.alearn(THREAD, target)
        self.steps += 1
        assert record["step"] == self.steps
        assert record["input"] == self.pending
        assert record["target"] == " ".join(target.lower().split())
        self.pending = None
        await self.check()

    async def discard(self) -> None:
        memory = await self.learner.amemory(THREAD)
        record = await self.learner.adiscard(THREAD)
        assert record["step"] == self.steps + 1
        assert record["input"] == self.pending
        assert record["prediction"] is not None
        self.pending = None
        self.discards += 1
        state = await self.learner.graph.aget_state({"configurable": {"thread_id": THREAD}})
        assert state.values == self.values_before_predict  # exactly as before that predict
        assert not state.next
        assert await self.learner.amemory(THREAD) == memory
        await self.check()

    async def check(self) -> None:
        history = await self.learner.ahistory(THREAD)
        assert [r["step"] for r in history] == list(range(1, self.steps + 1))
        memory = await self.learner.amemory(THREAD)
        assert memory == (history[-1]["memory_after"] if history else memory)
        assert len(await self.learner.adiscarded(THREAD)) == self.discards

    async def step(self) -> str:
        """Make one random move; return its name."""
        learner, rng, pending = self.learner, self.rng, self.pending is not None
        moves: dict[str, Callable[[], Awaitable[None]]] = {
            "predict": self.predict if not pending else lambda: self.expect_error(
                LearnerStateError, lambda: learner.apredict(THREAD, "again"), "predict twice"
            ),
            "learn": self.learn if pending else lambda: self.expect_error(
                LearnerStateError, lambda: learner.alearn(THREAD, "dry"), "learn, no predict"
            ),
            "discard": self.discard if pending else lambda: self.expect_error(
                StateError, lambda: learner.adiscard(THREAD), "discard, nothing pending"
            ),
            "bad target": lambda: self.expect_error(
                DataError if pending else LearnerStateError,
                lambda: learner.alearn(THREAD, rng.choice(BAD_TARGETS)),
                "bad target",
            ),
            "bad input": lambda: self.expect_error(
                ConfigError,
                lambda: learner.apredict(THREAD, rng.choice(BAD_INPUTS)),
                "bad input",
            ),
            "bad id": lambda: self.expect_error(
                ConfigError, lambda: learner.apredict(THREAD, "a day", id=7), "bad id"
            ),
            "bad thread": lambda: self.expect_error(
                ConfigError, lambda: learner.apredict(None, "a day"), "bad thread"
            ),
        }  # fmt: skip
        if self.steps:  # the thread has recorded settings: other ones are refused
            moves["other settings"] = lambda: self.expect_error(
                LearnerStateError if pending else ConfigError,
                lambda: self.other.apredict(THREAD, "a day"),
                "other settings",
            )
        name = rng.choice(sorted(moves))
        await moves[name]()
        return name


@pytest.mark.parametrize("where", ["memory", "sqlite"])
@pytest.mark.parametrize("seed", [0, 1])
async def test_every_error_in_any_order_leaves_the_thread_working(
    where: str, seed: int, tmp_path: Path
) -> None:
    async with learner_on(where, tmp_path) as learner:
        walk = Walk(learner, random.Random(seed))
        made = [await walk.step() for _ in range(24)]
        await walk.recover()
        assert walk.steps >= 5
        assert len(set(made)) >= 6, made  # the walk met most kinds of moves


def test_a_restart_keeps_the_pending_step_and_can_discard_or_learn(tmp_path: Path) -> None:
    db = str(tmp_path / "online.db")
    first = OnlineLearner.open(db, context())
    first.predict("a", "cold and clear")
    first.learn("a", "dry")
    memory = first.memory("a")
    first.predict("a", "warm and wet")
    prediction = first.predict("b", "a storm")
    first.close()

    second = OnlineLearner.open(db, context())  # another process would do the same
    with pytest.raises(LearnerStateError, match="pending step 2"):
        second.predict("a", "another day")
    with pytest.raises(DataError, match="not one of dry, light rain, heavy rain"):
        second.learn("a", "chargeback")
    dropped = second.discard("a")
    assert (dropped["step"], dropped["input"]) == (2, "warm and wet")
    assert second.memory("a") == memory
    assert [r["step"] for r in second.history("a")] == [1]
    assert second.learn("b", "heavy rain")["prediction"] == prediction
    second.close()

    third = OnlineLearner.open(db, context())
    assert [d["step"] for d in third.discarded("a")] == [2]  # the discard survives too
    with pytest.raises(StateError, match="nothing to discard"):
        third.discard("a")
    third.predict("a", "warm and wet")
    assert third.learn("a", "LIGHT RAIN")["step"] == 2
    third.close()


def test_a_discard_on_a_new_thread_leaves_nothing_behind() -> None:
    learner = OnlineLearner(context())
    learner.predict("new", "first day")
    learner.discard("new")
    assert learner.graph.get_state({"configurable": {"thread_id": "new"}}).values == {}
    assert learner.history("new") == []
    learner.close()


def test_open_takes_allow_new_settings(tmp_path: Path) -> None:
    db = str(tmp_path / "online.db")
    first = OnlineLearner.open(db, context())
    first.predict("u", "rain all day")
    first.learn("u", "light rain")
    first.close()
    refused = OnlineLearner.open(db, context("fake:1"))
    with pytest.raises(ConfigError, match="other settings"):
        refused.predict("u", "dry")
    refused.close()
    upgraded = OnlineLearner.open(db, context("fake:1"), allow_new_settings=True)
    upgraded.predict("u", "dry")
    assert upgraded.learn("u", "dry")["step"] == 2
    upgraded.close()


async def test_run_sequence_checks_every_target_before_any_model_call() -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    from llm_as_rnn import build_graph, run_sequence
    from llm_as_rnn.testing import FunctionChatModel, rule_based

    calls: list[int] = []
    respond = rule_based(0)

    def counted(messages: Any) -> str:
        calls.append(1)
        return respond(messages)

    ctx = Context(model=FunctionChatModel(respond=counted), budget=300, feedback="deferred")
    graph = build_graph(InMemorySaver(), InMemoryStore())
    days: list[Any] = [{"input": f"day {n}", "target": "dry"} for n in range(4)]
    days[2] = {"input": "day 2", "target": "chargeback"}
    with pytest.raises(DataError, match=r"observations\.2: target 'chargeback' is not one of"):
        await run_sequence(graph, days, thread_id="s", context=ctx)
    assert calls == []
    assert not (await graph.aget_state({"configurable": {"thread_id": "s"}})).values
    days[2] = {"input": "day 2", "target": "Heavy Rain"}
    assert (await run_sequence(graph, days, thread_id="s", context=ctx)).steps_done == 4


async def test_a_bad_resume_value_pauses_again_instead_of_locking_the_thread() -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore
    from langgraph.types import Command

    from llm_as_rnn import build_graph

    graph = build_graph(InMemorySaver(), InMemoryStore())
    config: Any = {"configurable": {"thread_id": "plain"}}
    ctx = Context(model="fake", budget=300, feedback="deferred")
    await graph.ainvoke({"observations": [{"input": "rain"}]}, config, context=ctx)
    for bad in ("chargeback", 3):  # plain LangGraph skips the learner's checks
        paused = await graph.ainvoke(Command(resume=bad), config, context=ctx)
        assert (
            "is not one of dry, light rain, heavy rain" in paused["__interrupt__"][0].value["error"]
        )
    done = await graph.ainvoke(Command(resume="dry"), config, context=ctx)
    assert done["last_step"]["target"] == "dry"
    assert "__interrupt__" not in done


async def test_a_thread_written_elsewhere_is_a_lease_error_then_works(tmp_path: Path) -> None:
    import asyncio
    import contextvars

    from llm_as_rnn import LeaseError
    from llm_as_rnn.runtime.leases import holding
    from llm_as_rnn.runtime.storage import leases_of

    async with OnlineLearner.aopen(str(tmp_path / "online.db"), context()) as learner:
        held, release = asyncio.Event(), asyncio.Event()

        async def other_writer() -> None:  # another process's run_sequence or learner
            async with holding(leases_of(learner.store), THREAD):
                held.set()
                await release.wait()

        other = asyncio.create_task(other_writer(), context=contextvars.Context())
        await held.wait()
        for call in (
            lambda: learner.apredict(THREAD, "cloudy"),
            lambda: learner.alearn(THREAD, "dry"),
            lambda: learner.adiscard(THREAD),
        ):
            with pytest.raises(LeaseError, match="is being run by"):
                await call()
        release.set()
        await other
        await learner.apredict(THREAD, "cloudy")
        assert (await learner.alearn(THREAD, "dry"))["step"] == 1
