"""The online API: predict now, learn later; sync and async; survives a restart."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from llm_as_rnn.frontends.online import LearnerStateError, OnlineLearner
from llm_as_rnn.tasks import get_task
from tests.conftest import make_context

REPO = Path(__file__).resolve().parents[2]
H0 = get_task("weather").initial_memory()


async def test_async_predict_then_learn() -> None:
    learner = OnlineLearner(make_context())
    prediction = await learner.apredict("u1", "rainy and windy", id="d1")
    assert prediction["valid"]
    assert await learner.amemory("u1") == H0  # nothing learned before the truth
    record = await learner.alearn("u1", "light rain")
    assert record["step"] == 1
    assert record["target"] == "light rain"
    assert record["prediction"] == prediction
    assert await learner.amemory("u1") != H0
    assert [r["step"] for r in await learner.ahistory("u1")] == [1]


def test_sync_api_and_order_errors() -> None:
    learner = OnlineLearner(make_context())
    with pytest.raises(LearnerStateError, match="call predict\\(\\) first"):
        learner.learn("u", "dry")
    learner.predict("u", "a dry day")
    with pytest.raises(LearnerStateError, match="pending step 1: call learn"):
        learner.predict("u", "another day")
    learner.learn("u", "dry")
    learner.predict("u", "another day")
    learner.learn("u", "light rain")
    assert [r["step"] for r in learner.history("u")] == [1, 2]
    assert learner.memory("other-thread") == H0  # threads are independent
    learner.close()


def test_pending_prediction_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "online.db")
    first = OnlineLearner.open(db, make_context())
    prediction = first.predict("p", "cold and clear")
    first.close()
    second = OnlineLearner.open(db, make_context())  # a new process would do the same
    record = second.learn("p", "dry")
    assert record["prediction"] == prediction
    assert second.memory("p") != H0
    second.close()


def test_example_agent_runs() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "online_agent.py"),
            "--model",
            "fake",
            "--days",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    forecast = next(i for i, line in enumerate(lines) if "forecast for tomorrow" in line)
    truth = next(i for i, line in enumerate(lines) if "truth =" in line)
    assert forecast < truth  # the prediction is shown before the truth is known
    assert "memory changed: True" in out.stdout
    assert "3 steps learned" in out.stdout


def test_a_learner_with_other_settings_is_refused_on_a_known_thread() -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    from llm_as_rnn import ConfigError, Context, OnlineLearner

    saver, store = InMemorySaver(), InMemoryStore()
    first = OnlineLearner(Context(model="fake", budget=300), checkpointer=saver, store=store)
    first.predict("u", "rain all day")
    first.learn("u", "light rain")
    first.close()
    other = OnlineLearner(Context(model="fake:1", budget=300), checkpointer=saver, store=store)
    with pytest.raises(
        ConfigError, match=re.escape('models.{predictor,critic,rewriter}.name: "0" -> "1"')
    ):
        other.predict("u", "dry")
    assert other.predict("v", "dry")["text"]  # a new thread is fine
    other.close()
    upgraded = OnlineLearner(
        Context(model="fake:1", budget=300), checkpointer=saver, store=store,
        allow_new_settings=True,
    )  # fmt: skip
    assert upgraded.predict("u", "dry")["text"]
    upgraded.close()
