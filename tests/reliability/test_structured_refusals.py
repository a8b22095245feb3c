"""What an endpoint's error on a structured call means (a loopback server scripted per test).

Only an error that says the server refuses structured outputs is a refusal, and a
refusal holds for the schema refused: the judge's and choice mode's schemas are still
asked. Any other error (a prompt over the context, a bad request) is raised as for
any call, and structured outputs stay on. Each refusal cause costs one warning line,
worded for what it turns to free text.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from pydantic import SecretStr

from llm_as_rnn.core.feedback import JUDGE_FIELDS, VERDICTS
from llm_as_rnn.errors import EndpointError
from llm_as_rnn.runtime.endpoint import OpenAIBackend
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.runtime.spec import CallPolicy, Endpoint, Sampling, parse_spec
from llm_as_rnn.runtime.structure import judgement, operations
from tests.reliability.loopback import loopback, schema_name

SECTIONS = ["PATTERNS", "RECENT ERRORS", "RULES OF THUMB"]
OLD = "## PATTERNS\n- [n1] dry spells\n## RECENT ERRORS\n- [n2] missed a front\n## RULES OF THUMB"
JUDGED = {"verdict": "plausible", "wrong_if": "rain", "relied_on": "wind", "lesson": "fronts"}
MESSAGES = [HumanMessage("Current notes:\n" + OLD)]
OPS = operations(SECTIONS, [1, 2], 256)
JUDGE = judgement(VERDICTS, JUDGE_FIELDS, 128)
SAMPLING, POLICY = Sampling(max_new_tokens=256), CallPolicy(max_attempts=1)


async def backend_at(url: str, name: str) -> OpenAIBackend:
    """A backend of its own name: warnings are once per process per name."""
    backend = await aresolve(parse_spec(f"openai:{name}"), Endpoint(url, timeout_s=5))
    assert isinstance(backend, OpenAIBackend)
    return backend


def structured_answer(payload: dict[str, Any]) -> tuple[int, str]:
    """Answer each schema with a valid instance, free text with NONE."""
    name = schema_name(payload)
    if name == "memory_operations":
        return 200, json.dumps({"operations": []})
    if name == "judgement":
        return 200, json.dumps(JUDGED)
    if name == "answer":
        return 200, json.dumps({"answer": "rain"})
    return 200, "NONE"


async def test_a_server_refusing_one_schema_keeps_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def answer(payload: dict[str, Any]) -> tuple[int, str]:
        if schema_name(payload) == "memory_operations":  # OpenAI's strict-mode validator
            return 400, "Invalid schema for response_format 'memory_operations': anyOf ..."
        return structured_answer(payload)

    assert OPS is not None
    assert JUDGE is not None
    with loopback(answer) as (url, seen):
        backend = await backend_at(url, "one-schema-refused")
        with caplog.at_level(logging.WARNING, logger="llm_as_rnn"):
            update = await backend.generate(MESSAGES, SAMPLING, POLICY, OPS)
            again = await backend.generate(MESSAGES, SAMPLING, POLICY, OPS)
            verdict = await backend.generate(MESSAGES, SAMPLING, POLICY, JUDGE)
            choice = await backend.constrained_choice(MESSAGES, ["rain", "dry"])
    asked = [schema_name(p) for p in seen]
    # refused, then in free text; not asked again; the judge and choice mode keep theirs
    assert asked == ["memory_operations", None, None, "judgement", "answer"]
    assert update.text == again.text == "NONE"
    assert verdict.text.startswith("Verdict: plausible")
    assert choice == "rain"
    assert backend.structuring() == "refused -> free text"
    assert caplog.messages == [
        "warning: one-schema-refused refuses the JSON schema of its memory updates "
        "(memory_operations): they are free text, read by the parser"
    ]


@pytest.mark.parametrize(
    "error",
    [
        "This model's maximum context length is 8192 tokens. (context_length_exceeded)",
        "Unrecognized request argument supplied: foo",
    ],
)
async def test_an_error_that_is_not_a_refusal_is_raised_and_keeps_structured_outputs(
    caplog: pytest.LogCaptureFixture, error: str
) -> None:
    calls = {"n": 0}

    def answer(payload: dict[str, Any]) -> tuple[int, str]:
        calls["n"] += 1
        return (400, error) if calls["n"] == 1 else structured_answer(payload)

    assert OPS is not None
    with loopback(answer) as (url, seen):
        backend = await backend_at(url, f"one-off-{len(error)}")
        with caplog.at_level(logging.WARNING, logger="llm_as_rnn"):
            with pytest.raises(EndpointError, match="not retried"):
                await backend.generate(MESSAGES, SAMPLING, POLICY, OPS)
            update = await backend.generate(MESSAGES, SAMPLING, POLICY, OPS)
            choice = await backend.constrained_choice(MESSAGES, ["rain", "dry"])
    assert [schema_name(p) for p in seen] == ["memory_operations"] * 2 + ["answer"]
    assert update.text == "NONE"  # {"operations": []} in its text form
    assert choice == "rain"
    assert backend.structuring() == "JSON schema"
    assert not caplog.messages


@pytest.mark.parametrize(
    ("reason", "line"),
    [
        (
            "'response_format' of type 'json_schema' is not supported with this model",
            "refuses structured outputs (response_format): memory updates and judge answers "
            "are free text, read by the parsers",
        ),
        (  # one reason for every schema (a proxy repeating the first): one cause
            "Invalid schema for response_format 'memory_operations': 'maxLength' is not permitted",
            "refuses the JSON schema of its memory updates (memory_operations): they are free "
            "text, read by the parser",
        ),
    ],
)
async def test_one_reason_for_every_schema_costs_one_line(
    caplog: pytest.LogCaptureFixture, reason: str, line: str
) -> None:
    def answer(payload: dict[str, Any]) -> tuple[int, str]:
        return (400, reason) if schema_name(payload) is not None else (200, "NONE")

    assert OPS is not None
    assert JUDGE is not None
    with loopback(answer) as (url, seen):
        backend = await backend_at(url, f"refusing-{len(reason)}")
        with caplog.at_level(logging.WARNING, logger="llm_as_rnn"):
            await backend.generate(MESSAGES, SAMPLING, POLICY, OPS)
            await backend.generate(MESSAGES, SAMPLING, POLICY, JUDGE)
            await backend.generate(MESSAGES, SAMPLING, POLICY, OPS)
            choice = await backend.constrained_choice(MESSAGES, ["rain", "dry"])
    # each schema asked once (a refusal holds for the schema refused), then free text
    assert [schema_name(p) for p in seen] == [
        "memory_operations",
        None,
        "judgement",
        None,
        None,
        "answer",
    ]
    assert choice is None  # choice mode's own line says it answers free (core.choice)
    assert caplog.messages == [f"warning: {backend.name} {line}"]


async def test_a_chat_openai_instance_answers_under_its_schema() -> None:
    from langchain_openai import ChatOpenAI

    assert OPS is not None
    with loopback(structured_answer) as (url, seen):
        chat = ChatOpenAI(model="m", base_url=url, api_key=SecretStr("k"), max_retries=0)
        backend = await aresolve(parse_spec(chat), Endpoint(None))
        update = await backend.generate(MESSAGES, SAMPLING, POLICY, OPS)
    assert [schema_name(p) for p in seen] == ["memory_operations"]
    assert update.text == "NONE"
    assert backend.structuring() == "JSON schema"


def test_every_fault_server_option_has_its_help() -> None:
    from tests.reliability.fault_server import build_parser

    actions = build_parser()._actions  # argparse keeps no public list of them
    assert [a.option_strings[0] for a in actions if not a.help] == []
