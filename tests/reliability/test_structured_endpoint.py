"""Structured memory updates and judge fields against an OpenAI-compatible server (loopback).

The fault server answers a ``response_format`` JSON schema with a valid
instance of it, or refuses it (``--no-structured``): structured answers land
as the text the parsers take, and a refusal costs one warning line and free
text, never a step.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from llm_as_rnn.core import delta
from llm_as_rnn.core.feedback import JUDGE_FIELDS, VERDICTS, judge_critique, parse_verdict
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.runtime.spec import CallPolicy, Endpoint, Sampling, parse_spec
from llm_as_rnn.runtime.structure import judgement, operations
from llm_as_rnn.tasks import get_task
from tests.reliability.harness import fault_server, run_args, run_cli, trace

TASK = get_task("weather")
SECTIONS = list(TASK.sections)
OLD = "## PATTERNS\n- [n1] dry spells\n## RECENT ERRORS\n- [n2] missed a front\n## RULES OF THUMB"
REFUSED = "refuses structured outputs"


async def test_structured_operations_and_verdicts_land_when_the_server_supports_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ops, judge = operations(SECTIONS, [1, 2], 256), judgement(VERDICTS, JUDGE_FIELDS, 128)
    assert ops is not None
    assert judge is not None
    messages = [HumanMessage("Current notes:\n" + OLD)]
    with fault_server(seed=4, fault_rate=0.3) as server:  # transient faults are retried
        backend = await aresolve(parse_spec("openai:fault-model"), Endpoint(server.url))
        with caplog.at_level(logging.WARNING, logger="llm_as_rnn"):
            for seed in range(6):
                sampling, policy = Sampling(max_new_tokens=256), CallPolicy(seed=seed, timeout_s=2)
                update = await backend.generate(messages, sampling, policy, ops)
                applied = delta.apply(OLD, update.text, SECTIONS)
                # read whole: at worst an operation on a note an earlier one removed
                assert applied.kind in (None, "unknown note"), update.text
                verdict = await backend.generate(messages, sampling, policy, judge)
                assert parse_verdict(verdict.text) in VERDICTS
                assert judge_critique(verdict.text).count(":") >= len(JUDGE_FIELDS)
        stats = server.stats()
    assert stats["structured"] == 12
    assert not caplog.messages


async def test_a_server_refusing_structured_outputs_answers_free_text_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ops = operations(SECTIONS, [1, 2], 256)
    assert ops is not None
    messages = [HumanMessage("Current notes:\n" + OLD)]
    with fault_server(seed=4, no_structured=True) as server:
        backend = await aresolve(parse_spec("openai:refusing-model"), Endpoint(server.url))
        with caplog.at_level(logging.WARNING, logger="llm_as_rnn"):
            first = await backend.generate(
                messages, Sampling(max_new_tokens=256), CallPolicy(), ops
            )
            asked = server.stats()["requests"]
            again = await backend.generate(
                messages, Sampling(max_new_tokens=256), CallPolicy(), ops
            )
            free = await backend.generate(messages, Sampling(max_new_tokens=256), CallPolicy())
        stats = server.stats()
    assert asked == 2  # the refused request, then the same call in free text
    assert stats["requests"] == 4  # not asked again: one request per call from then on
    assert first.text == again.text == free.text  # the free answer, read by the parser
    assert sum(REFUSED in m for m in caplog.messages) == 1


async def test_a_structured_call_skips_the_sdks_parse_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDK's parse walks the whole schema with its typed transform on every call
    # (client CPU on the shared event loop): the schema goes as a plain body field.
    from openai.resources.chat.completions import AsyncCompletions

    async def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a structured call took the SDK's parse path")

    monkeypatch.setattr(AsyncCompletions, "parse", no_parse)
    ops = operations(SECTIONS, [1, 2], 256)
    assert ops is not None
    with fault_server(seed=4) as server:
        backend = await aresolve(parse_spec("openai:no-parse-model"), Endpoint(server.url))
        reply = await backend.generate(
            [HumanMessage("Current notes:\n" + OLD)],
            Sampling(max_new_tokens=256),
            CallPolicy(),
            ops,
        )
        stats = server.stats()
    assert stats["structured"] == stats["requests"] == 1  # the server saw the schema
    assert delta.apply(OLD, reply.text, SECTIONS).kind in (None, "unknown note")


async def test_a_structured_answer_cut_at_its_cap_is_cut_off_not_a_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ops = operations(SECTIONS, [1, 2], 256)
    assert ops is not None
    messages = [HumanMessage("Current notes:\n" + OLD)]
    with fault_server(seed=4) as server:
        backend = await aresolve(parse_spec("openai:cutting-model"), Endpoint(server.url))
        with caplog.at_level(logging.WARNING, logger="llm_as_rnn"):
            cut = await backend.generate(messages, Sampling(max_new_tokens=5), CallPolicy(), ops)
            whole = await backend.generate(
                messages, Sampling(max_new_tokens=256), CallPolicy(), ops
            )
        stats = server.stats()
    assert cut.cut_off  # finish reason "length": still an answer, cut
    assert cut.completion_tokens == 5
    assert not whole.cut_off
    assert delta.apply(OLD, whole.text, SECTIONS).kind in (None, "unknown note")
    assert stats["structured"] == stats["requests"] == 2  # still asked for its schema
    assert not caplog.messages


@pytest.mark.parametrize(
    ("options", "server", "structured"),
    [
        ((), {}, True),
        (("--structured", "off"), {}, False),
        (("--preset", "paper"), {}, False),
        ((), {"no_structured": True}, False),
    ],
)
def test_a_run_structures_its_updates_and_verdicts_unless_off_or_refused(
    tmp_path: Path, options: tuple[str, ...], server: dict[str, bool], structured: bool
) -> None:
    extra = ("--rewrite-mode", "delta", "--feedback", "judge", *options)
    with fault_server(seed=3, **server) as running:
        out = run_cli(run_args(running.url, tmp_path / "s.db", "s", 6, *extra))
        stats = running.stats()
    assert out.returncode == 0, out.stderr[-2000:]
    records = trace(tmp_path / "s.db", "s")
    assert [r["step"] for r in records] == list(range(1, 7))
    assert (stats["structured"] > 0) is structured
    assert out.stderr.count(REFUSED) == (1 if server else 0)
    if structured:  # every update and verdict readable: none lost to its format
        assert not any(r["rejection_kind"] in ("unparseable", "cut off") for r in records)
        assert all(r["feedback"]["verdict"] in VERDICTS for r in records)
