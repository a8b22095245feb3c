"""Choice mode against an OpenAI-compatible server that returns token logprobs (loopback)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from llm_as_rnn.core import prompts
from llm_as_rnn.core.choice import choose, distribution
from llm_as_rnn.runtime.endpoint import first_token_scores
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.runtime.spec import CallPolicy, Endpoint, parse_spec
from llm_as_rnn.tasks import get_task
from llm_as_rnn.testing import rule_based
from tests.reliability.harness import CLI, fault_server, run_cli

TASK = get_task("weather")


def test_first_token_scores_by_hand() -> None:
    content = [
        {
            "token": "Answer",
            "logprob": -0.1,
            "top_logprobs": [{"token": "Answer", "logprob": -0.1}],
        },
        {"token": ":", "logprob": -0.1, "top_logprobs": [{"token": ":", "logprob": -0.1}]},
        {
            "token": " light",
            "logprob": -0.5,
            "top_logprobs": [
                {"token": " light", "logprob": -0.5},
                {"token": " dry", "logprob": -1.5},
            ],
        },
    ]
    labels = [" dry", " light rain", " heavy rain"]
    scores = first_token_scores(content, "Answer:", labels)
    # heavy rain is not listed: the smallest listed probability, halved
    assert scores == pytest.approx([-1.5, -0.5, -1.5 - math.log(2)])
    shared = first_token_scores(content, "Answer:", [" light rain", " light snow"])
    assert shared == pytest.approx([-0.5 - math.log(2)] * 2)  # one token, split evenly
    assert first_token_scores([], "Answer:", labels) is None


async def test_labels_are_scored_from_the_servers_logprobs() -> None:
    messages = prompts.predict_messages(TASK, TASK.initial_memory(), "0.0 mm, wind 4.7", 1)
    generated = rule_based(1)(messages).removeprefix("Answer: ")  # what the seed-1 server says
    with fault_server(seed=1, fault_rate=0.3) as server:  # transient faults are retried
        backend = await aresolve(parse_spec("openai:fault-model"), Endpoint(server.url))
        chosen = await choose(backend, TASK.labels, messages, None, CallPolicy(timeout_s=2))
    assert chosen is not None
    prediction, calls = chosen
    # by hand: the generated label's first word at -0.2, the others at -1.0, -1.5 in order
    others = [label for label in TASK.labels if label != generated]
    logprobs = {generated: -0.2, others[0]: -1.0, others[1]: -1.5}
    expected = distribution(TASK.labels, [logprobs[label] for label in TASK.labels])
    assert prediction["distribution"] == pytest.approx(expected)
    assert prediction["answer"] == generated
    assert prediction["valid"]
    assert calls[0].completion_tokens == 0


async def test_constrained_decoding_when_the_server_has_no_logprobs() -> None:
    messages = prompts.predict_messages(TASK, TASK.initial_memory(), "0.0 mm", 1)
    generated = rule_based(3)(messages).removeprefix("Answer: ")
    with fault_server(seed=3, no_logprobs=True) as server:
        backend = await aresolve(parse_spec("openai:fault-model"), Endpoint(server.url))
        chosen = await choose(backend, TASK.labels, messages, None)
        assert chosen is not None
        prediction, _ = chosen
        # the request carried the label enum, and the server's JSON answer was read
        assert prediction["answer"] == generated
        assert prediction["valid"]
        assert prediction.get("distribution") is None  # constrained: an answer, no probabilities
        assert server.stats()["requests"] == 2  # the logprobs request, then the constrained one


async def test_a_server_without_logprobs_or_structured_output_answers_freely(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages = prompts.predict_messages(TASK, TASK.initial_memory(), "0.0 mm", 1)
    with fault_server(seed=2, no_logprobs=True, no_structured=True) as server:
        backend = await aresolve(parse_spec("openai:fault-model"), Endpoint(server.url))
        with caplog.at_level(logging.WARNING, logger="llm_as_rnn"):
            chosen = await choose(backend, TASK.labels, messages, None)
    assert chosen is None
    assert any("cannot score labels" in m for m in caplog.messages)


def test_choice_eval_on_a_flaky_hostile_endpoint(tmp_path: Path) -> None:
    with fault_server(seed=8, fault_rate=0.2, hostile=0.3) as server:
        out = run_cli(
            [
                *CLI,
                "eval",
                *("--tasks", "weather", "--methods", "zero-shot,rnn", "--answer-mode", "choice"),
                *("--model", "openai:fault-model", "--base-url", server.url, "--timeout", "1"),
                *("--sequences", "2", "--steps", "4", "--budget", "200"),
                *("--out", str(tmp_path / "o")),
            ]
        )
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "o" / "summary.json").read_text())["results"]["weather"]
    for method in ("zero-shot", "rnn"):
        assert results[method]["invalid_rate"] == 0.0  # hostile text never reaches an answer
        assert results[method]["calibration"] is not None
