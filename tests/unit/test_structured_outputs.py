"""Structured answers as JSON schemas and back; rejections counted by kind (fake models)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import build_graph, read_trace
from llm_as_rnn.core import delta
from llm_as_rnn.core import memory as mem
from llm_as_rnn.core.feedback import JUDGE_FIELDS, VERDICTS, judge_critique, parse_verdict
from llm_as_rnn.core.rejections import rejections, rejections_line
from llm_as_rnn.core.state import REJECTION_KINDS
from llm_as_rnn.data import weather
from llm_as_rnn.frontends.terminal import run_summary
from llm_as_rnn.runtime.backends import CHARS_PER_TOKEN, approx_tokens
from llm_as_rnn.runtime.schema import json_schema, text_of
from llm_as_rnn.runtime.structure import judgement, operations, skeleton
from llm_as_rnn.tasks import get_task
from tests.conftest import make_context, make_model, rewriter_answers

TASK = get_task("weather")
SECTIONS = list(TASK.sections)
OLD = "## PATTERNS\n- [n2] dry spells\n## RECENT ERRORS\n- [n5] missed a front\n## RULES OF THUMB"


def test_a_delta_schema_names_only_the_memorys_sections_and_ids() -> None:
    shape = operations(SECTIONS, [2, 5], 256)
    assert shape is not None
    schema = json_schema(shape)
    ops = schema["properties"]["operations"]
    assert schema["required"] == ["operations"]
    assert ops["maxItems"] == shape.max_ops
    add, edit, remove = ops["items"]["anyOf"]
    assert add["properties"]["section"]["enum"] == SECTIONS
    assert (
        edit["properties"]["note"]["enum"] == remove["properties"]["note"]["enum"] == ["n2", "n5"]
    )
    assert add["properties"]["text"]["maxLength"] == int(shape.field_tokens * CHARS_PER_TOKEN)
    assert all(kind["additionalProperties"] is False for kind in (add, edit, remove))
    no_notes = operations(SECTIONS, [], 256)
    assert no_notes is not None
    assert len(json_schema(no_notes)["properties"]["operations"]["items"]["anyOf"]) == 1


def test_a_delta_answer_comes_back_as_operations_that_apply() -> None:
    shape = operations(SECTIONS, [2, 5], 256, lead=True)
    assert shape is not None
    answer = {
        "feedback": "Wrong: the front\ncame early.",
        "operations": [
            {"op": "ADD", "section": "RULES OF THUMB", "text": "Watch the wind\nbefore a front."},
            {"op": "EDIT", "note": "n2", "text": "Dry spells last 2-4 days."},
            {"op": "REMOVE", "note": "n5"},
        ],
    }
    text = text_of(shape, json.dumps(answer))
    assert text is not None
    assert text.splitlines()[0] == "Feedback: Wrong: the front came early."  # one line each
    applied = delta.apply(OLD, text, SECTIONS)
    assert applied.reason is None
    assert applied.memory is not None
    assert "Watch the wind before a front." in applied.memory
    assert "Dry spells last 2-4 days." in applied.memory
    assert "missed a front" not in applied.memory
    none = text_of(shape, json.dumps({"feedback": "fine", "operations": []}))
    assert none == "Feedback: fine\nNONE"
    assert (
        delta.apply(OLD, none or "", SECTIONS).memory == delta.apply(OLD, "NONE", SECTIONS).memory
    )


def test_a_full_answer_comes_back_as_every_section_in_order() -> None:
    shape = skeleton(SECTIONS, 400)
    assert shape is not None
    sections = json_schema(shape)["properties"]["sections"]
    assert list(sections["properties"]) == sections["required"] == SECTIONS
    assert all(p["minItems"] == 1 for p in sections["properties"].values())
    answer = {"RULES OF THUMB": ["Check the wind."], "PATTERNS": ["Dry spells last."]}
    answer["RECENT ERRORS"] = ["Missed a front", "  "]
    text = text_of(shape, json.dumps({"sections": answer}))
    assert text is not None
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        f"## {name}" for name in SECTIONS
    ]
    verdict = mem.guard(TASK.initial_memory(), text, SECTIONS, approx_tokens)
    assert verdict.reason is None
    assert text_of(shape, json.dumps({"sections": {"PATTERNS": ["x"]}})) is None  # one missing


def test_a_judges_answer_comes_back_as_its_verdict_and_fields() -> None:
    shape = judgement(VERDICTS, JUDGE_FIELDS, 128)
    assert shape is not None
    schema = json_schema(shape)
    assert schema["required"] == ["verdict", "wrong_if", "relied_on", "lesson"]
    assert schema["properties"]["verdict"]["enum"] == list(VERDICTS)
    answer = {"verdict": "implausible", "wrong_if": "rain", "relied_on": "none", "lesson": "x y"}
    text = text_of(shape, json.dumps(answer))
    assert text is not None
    assert parse_verdict(text) == "implausible"
    assert judge_critique(text) == "Wrong if: rain Relied on: none Lesson: x y"
    assert text_of(shape, json.dumps({**answer, "lesson": " "})) is None  # a blank field


@pytest.mark.parametrize("reply", ["ADD PATTERNS: free text", "[1, 2]", '{"operations": "x"}', ""])
def test_an_answer_that_is_not_such_json_has_no_text_form(reply: str) -> None:
    shape = operations(SECTIONS, [2], 256)
    assert shape is not None
    assert text_of(shape, reply) is None


@pytest.mark.parametrize("fence", ["```json\n{}\n```", "```\n{}\n```", "  ```JSON\n{}\n```\n"])
def test_json_in_one_code_fence_is_read_as_the_json(fence: str) -> None:
    shape = operations(SECTIONS, [2], 256)
    assert shape is not None
    body = {"operations": [{"op": "ADD", "section": "PATTERNS", "text": "fronts bring rain"}]}
    text = text_of(shape, fence.replace("{}", json.dumps(body, indent=2)))
    assert text == "ADD PATTERNS: fronts bring rain"
    assert text_of(shape, "```json\n{}\n```\n```json\n{}\n```") is None  # two: not one answer


@pytest.mark.parametrize("title", ["feedback", "sections", "verdict", "operations"])
def test_a_section_named_like_a_fixed_json_key_keeps_both(title: str) -> None:
    shape = skeleton([title, "OTHER"], 400, lead=True)
    assert shape is not None
    schema = json_schema(shape)
    assert schema["required"] == ["feedback", "sections"]
    assert schema["properties"]["sections"]["required"] == [title, "OTHER"]
    answer = {"feedback": "late", "sections": {title: ["a"], "OTHER": ["b"]}}
    assert text_of(shape, json.dumps(answer)) == f"Feedback: late\n## {title}\n- a\n## OTHER\n- b"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("", "empty"),
        ("I refuse.", "unparseable"),
        ("## PATTERNS\n- only one", "missing section"),
        ("## PATTERNS\n\n## RECENT ERRORS\n\n## RULES OF THUMB\n", "empty"),
        ("## PATTERNS\n- <observation>\n## RECENT ERRORS\n- x\n## RULES OF THUMB\n- y", "echo"),
    ],
)
def test_the_guard_names_its_kind(raw: str, kind: str) -> None:
    verdict = mem.guard(TASK.initial_memory(), raw, SECTIONS, approx_tokens)
    assert verdict.reason is not None
    assert verdict.kind == kind
    assert kind in REJECTION_KINDS


def test_a_drastic_shrink_and_a_gone_note_have_their_kinds() -> None:
    big = mem.render_memory({name: "- a long standing note " * 12 for name in SECTIONS}, SECTIONS)
    small = mem.render_memory({name: "- a" for name in SECTIONS}, SECTIONS)
    assert mem.guard(big, small, SECTIONS, approx_tokens).kind == "drastic shrink"
    assert delta.apply(OLD, "EDIT n9: gone", SECTIONS).kind == "unknown note"
    assert delta.apply(OLD, "sure, here you go", SECTIONS).kind == "unparseable"


def test_rejections_are_counted_by_kind_over_rewrites_made() -> None:
    records: list[dict[str, Any]] = [
        {"rewrite_rejected": True, "rejection_kind": "drastic shrink", "enforcement": "kept"},
        {"rewrite_rejected": True, "rejection_kind": "cut off", "enforcement": "kept"},
        {"rewrite_rejected": True, "rejection_kind": "cut off", "enforcement": "kept"},
        {"rewrite_rejected": True, "enforcement": "kept"},  # written before kinds were
        {"rewrite_rejected": False, "enforcement": "rewrite"},
        {"rewrite_rejected": False, "enforcement": "skipped"},  # no rewrite made
        {"rewrite_rejected": None},  # a method without rewrites
    ]
    counts = rejections(records)
    assert counts == {
        "rewrites": 5,
        "rejected": 4,
        "by_kind": {"cut off": 2, "drastic shrink": 1, "unrecorded": 1},
        "without_rewrite": {"skipped": 1},
    }
    assert rejections_line(counts) == (
        "rewrites rejected: 4 of 5 (cut off 2, drastic shrink 1, unrecorded 1) · skipped 1"
    )
    assert rejections_line(rejections([])) == "rewrites rejected: 0 of 0"


async def test_a_run_records_and_sums_up_its_rejections_by_kind() -> None:
    store = InMemoryStore()
    g = build_graph(checkpointer=InMemorySaver(), store=store)
    ctx = make_context(make_model(rewriter_answers("I refuse.")), rewrite_mode="delta")
    config = {"configurable": {"thread_id": "t"}}
    await g.ainvoke({"observations": weather.window(0, 3)}, config, context=ctx)
    records = await read_trace(store, "t")
    assert [r["rejection_kind"] for r in records] == ["unparseable"] * 3
    panel = run_summary(records)
    assert "rewrites rejected: 3 of 3 (unparseable 3)" in str(panel.renderable)
