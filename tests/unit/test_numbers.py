"""One number grammar: every documented form reads back, booleans and overflow never do."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import ConfigError, build_graph, read_trace, run_sequence
from llm_as_rnn.data.files import load_file, load_task_file
from llm_as_rnn.evals.records import rnn_record
from llm_as_rnn.tasks import get_task
from llm_as_rnn.tasks.generic import GenericRegression
from llm_as_rnn.tasks.numbers import LIMIT, number
from llm_as_rnn.testing import FunctionChatModel, rule_based
from tests.conftest import make_context

MINUS = "\u2212"
PLAIN = GenericRegression()
PERCENT = get_task("sp500")  # its numbers are percent

FINITE = st.floats(min_value=-LIMIT, max_value=LIMIT, allow_nan=False, allow_infinity=False)
BASES = ["repr", "fixed", "grouped", "exp", "EXP", "general", "point", "point-exp"]
SIGNS = ["ascii", "unicode minus", "plus"]
ANSWERS = [
    "{}",
    "Answer: {}",
    "**Answer:** {}",
    "Answer: **{}**",
    "Answer: `{}`",
    "_Answer_: {}.",
    "The answer is {}",
    "Yesterday was 3.2, the day before 4,5 and t-1 fell.\n\n**Answer**: {}\n",
]


def printed(x: float, base: str, decimals: int) -> tuple[str, float | None]:
    """Print ``x`` in a documented form; return the text and the value it denotes."""
    plain = {
        "repr": repr(x),
        "fixed": f"{x:.{decimals}f}",
        "grouped": f"{x:.{decimals}f}",
        "exp": f"{x:.{decimals}e}",
        "EXP": f"{x:.{decimals}E}",
        "general": f"{x:.17g}",
        "point": f"{x:#.0f}",  # a trailing point: "5."
        "point-exp": f"{x:#.0e}",  # "5.e+03"
    }[base]
    text = f"{x:,.{decimals}f}" if base == "grouped" else plain
    denoted: float | None = float(plain)
    if base == "grouped" and text.count(",") == 1 and "." not in text:
        denoted = None  # "1,234": a thousands comma or a decimal comma? Refused.
    return text, denoted


def signed(text: str, sign: str, leading_dot: bool) -> str:
    """Apply a documented sign form (and a leading point: "0.5" -> ".5") to a printed number."""
    if leading_dot:
        text = re.sub(r"^(-?)0\.(?=[0-9])", r"\1.", text)
    if sign == "unicode minus":
        return text.replace("-", MINUS)
    if sign == "plus" and not text.startswith("-"):
        return "+" + text
    return text


@settings(max_examples=1500, deadline=None)
@given(
    x=FINITE,
    base=st.sampled_from(BASES),
    decimals=st.integers(0, 20),
    sign=st.sampled_from(SIGNS),
    leading_dot=st.booleans(),
    answer=st.sampled_from(ANSWERS),
    pct=st.booleans(),
)
def test_every_documented_form_reads_back(
    x: float, base: str, decimals: int, sign: str, leading_dot: bool, answer: str, pct: bool
) -> None:
    text, denoted = printed(x, base, decimals)
    if base in ("repr", "general"):
        assert denoted == x  # these forms are exact: the value is x itself
    text = signed(text, sign, leading_dot)
    if pct:
        text += "%"
    reply = answer.format(text)
    # In a percent task "12%" is 12; elsewhere a percent sign is ambiguous (12 or 0.12).
    assert PERCENT.parse(reply) == denoted
    assert PLAIN.parse(reply) == (None if pct else denoted)
    for whole in (text, f"  **{text}** ", f"`{text}`"):
        if denoted is None:
            with pytest.raises(ValueError, match="ambiguous"):
                PERCENT.validate_target(whole)
        else:
            assert PERCENT.validate_target(whole) == denoted


@settings(max_examples=300)
@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not abs(v) <= LIMIT))
def test_out_of_range_or_non_finite_is_never_a_number(x: float) -> None:
    for value in (x, repr(x)):
        with pytest.raises(ValueError, match=r"beyond ±1e150|not a number"):
            PLAIN.validate_target(value)
    assert PLAIN.parse(f"Answer: {x!r}") is None


@settings(max_examples=200)
@given(st.booleans(), st.sampled_from(ANSWERS))
def test_booleans_are_never_numbers(value: bool, answer: str) -> None:
    for spelled in (value, json.loads(json.dumps(value)), np.bool_(value)):
        with pytest.raises(ValueError, match="not a number"):
            number(spelled)
        with pytest.raises(ValueError, match="not a number"):
            PLAIN.validate_target(spelled)
    for text in (str(value), json.dumps(value)):
        assert PLAIN.parse(answer.format(text)) is None
        with pytest.raises(ValueError, match="not a number"):
            number(text)


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("Answer: 1.5e-3", 0.0015),
        ("**Answer:** `2E+04`", 20000.0),
        ("Answer: 1,234,567.8", 1234567.8),
        ("Answer: +.5", 0.5),
        ("Answer: 0,5", None),  # a decimal comma: never 0.5, 0 or 5
        ("Answer: 1,234", None),  # 1234 or 1.234?
        ("Answer: 1 234", None),
        ("Answer: 1.2.3", None),
        ("Answer: 3 to 4", None),
        ("Answer: 3-4", None),
        ("Answer: 0.3\nAnswer: 0.5", None),
        ("Answer: 2M dollars, up from 1.5", None),  # 2 million? never 2, never 1.5
        ("Answer: 10k", None),
        ("Answer: 1e200", None),  # beyond the grammar's range: unreadable, not 1
        ("Answer: 12%", None),  # not a percent task
        ("Answer: 1_000", None),  # underscores are refused in answers as in targets, never 1
        ("Answer: 1_000.5", None),
        ("Answer: _1.5_", 1.5),  # markdown italics
        ("Answer: –0.42", None),  # a sign the grammar does not read: never 0.42
        ("Answer: - 0.42", None),
        ("Answer: －5", None),
        ("Answer: --5", None),
        ("Answer: 1×10^3", None),  # never 1
        ("Answer: 1⁄2", None),
        ("Answer: 1'000", None),
    ],
)
def test_answers_read_their_number_or_none(reply: str, value: float | None) -> None:
    assert PLAIN.parse(reply) == value


def test_percent_tasks_read_a_percent_sign() -> None:
    sp500 = get_task("sp500")
    assert sp500.parse("**Answer:** -0.42%") == -0.42
    assert sp500.parse("Answer: 1.5e-3") == 0.0015
    assert sp500.validate_target("12%") == 12.0
    with pytest.raises(ValueError, match="is a percentage"):
        GenericRegression().validate_target("12%")


def test_python_values_through_the_library() -> None:
    task = GenericRegression()
    assert task.validate_target(np.float32(0.5)) == 0.5
    assert task.validate_target(10**3) == 1000.0
    with pytest.raises(ValueError, match="beyond ±1e150"):
        task.validate_target(10**400)  # too large for a float: no OverflowError
    with pytest.raises(ValueError, match="boolean"):
        task.score(True, 1.0)


async def test_an_exponent_answer_is_scored_by_its_value() -> None:
    def respond(messages: list[BaseMessage]) -> str:
        if "Answer: <number" in str(messages[-1].content):
            return "My reasoning.\n**Answer:** 1.5e-3"
        return rule_based(0)(messages)

    task = GenericRegression("small")
    ctx = make_context(FunctionChatModel(respond=respond), task=task)
    store = InMemoryStore()
    days = [{"input": "reading 1", "target": 0.0015}, {"input": "reading 2", "target": 0.0025}]
    await run_sequence(build_graph(InMemorySaver(), store), days, thread_id="e", context=ctx)
    records = [rnn_record(task, "rnn", "s", r) for r in await read_trace(store, "e")]
    assert [r["prediction"] for r in records] == [0.0015, 0.0015]
    assert [r["metrics"]["coverage"] for r in records] == [1.0, 1.0]
    assert records[0]["metrics"]["abs_error"] == 0.0
    assert records[1]["metrics"]["abs_error"] == pytest.approx(0.001)


def write_rows(path: Path, targets: list[Any]) -> Path:
    rows = [
        {"sequence_id": "s", "step": t + 1, "input": f"reading {t}", "target": y}
        for t, y in enumerate(targets)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_json_boolean_target_is_refused_naming_the_row(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "flags.jsonl", [0.5, True])
    with pytest.raises(ConfigError, match=r"flags.jsonl row 2: target true is a boolean"):
        load_file(data, "regression")
    with pytest.raises(ConfigError, match=r"flags.jsonl row 2: target true is a boolean"):
        load_task_file(data, get_task("sp500"))


def test_file_targets_follow_the_grammar(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text('sequence_id,step,input,target\ns,1,x,"1,234.5"\ns,2,y,−2e-3\ns,3,z,.5\n')
    _, sequences = load_file(csv, "regression")
    assert [o["target"] for o in sequences[0][1]] == [1234.5, -0.002, 0.5]
    csv.write_text('sequence_id,step,input,target\ns,1,x,"0,5"\n')
    with pytest.raises(ConfigError, match="row 2: target '0,5' is not a number: a comma"):
        load_file(csv, "regression")


def eval_cli(data: Path, out: Path) -> subprocess.CompletedProcess[str]:
    args = ["--data", str(data), "--task-type", "regression", "--model", "fake"]
    return subprocess.run(
        [sys.executable, "-m", "llm_as_rnn", "eval", *args, "--sequences", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in a results file")

    return json.loads(text, parse_constant=refuse)


def test_huge_targets_are_refused_at_load_or_scored_finitely(tmp_path: Path) -> None:
    huge = eval_cli(write_rows(tmp_path / "huge.jsonl", [1.0, 1e308, -1e308]), tmp_path / "o1")
    assert huge.returncode == 2, huge.stderr
    assert huge.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'huge.jsonl'} row 2: target 1e+308 is beyond ±1e150 (numbers "
        "must be finite and at most 1e150 in size, so that squared errors stay finite) "
        "(task 'huge')"
    ]
    assert not (tmp_path / "o1").exists()
    edge = eval_cli(write_rows(tmp_path / "edge.jsonl", [LIMIT, -LIMIT, LIMIT]), tmp_path / "o2")
    assert edge.returncode == 0, edge.stderr
    summary = strict_json((tmp_path / "o2" / "summary.json").read_text())
    assert summary["results"]["edge"]["zero"]["metrics"]["mse"]["mean"] == pytest.approx(1e300)
    for line in (tmp_path / "o2" / "steps.jsonl").read_text().splitlines():
        strict_json(line)
