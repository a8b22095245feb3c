"""The critique: the verdict comes from the score, the critic writes the lesson, cuts are marked."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from llm_as_rnn import read_trace, run_sequence
from llm_as_rnn.core import prompts
from llm_as_rnn.core.feedback import lesson
from llm_as_rnn.core.graph import build_graph
from llm_as_rnn.core.state import CUT_MARK, NOTE_LIMIT, clip
from llm_as_rnn.data import weather
from llm_as_rnn.tasks import get_task
from llm_as_rnn.testing import FunctionChatModel, rule_based
from tests.conftest import make_context, make_model

SEQ = weather.window(0, 6)
CONTRADICTING = "CORRECT. The prediction was incorrect because the wind turned. Watch the wind."
VERDICTS = re.compile(r"\b(CORRECT|WRONG|incorrect)\b")


def critic_says(reply: str) -> Any:
    """The rule-based model, but the critic (truth known) answers ``reply``."""
    fake = rule_based(0)

    def respond(messages: list[BaseMessage]) -> str:
        return reply if "Truth: " in str(messages[-1].content) else fake(messages)

    return make_model(respond)


async def trace_of(model: Any, **fields: Any) -> list[Any]:
    store = InMemoryStore()
    graph = build_graph(InMemorySaver(), store)
    await run_sequence(graph, SEQ, thread_id="t", context=make_context(model, **fields))
    return await read_trace(store, "t")


async def test_the_verdict_line_is_the_scores_and_the_critic_writes_only_the_lesson() -> None:
    for record in await trace_of(critic_says(CONTRADICTING)):
        text = record["feedback"]["text"]
        verdict = "CORRECT" if record["correct"] else "WRONG"
        # one verdict, the score's, whatever the critic claimed
        assert VERDICTS.findall(text) == [verdict], text
        assert text.endswith("Lesson: Watch the wind."), text
        assert record["feedback"]["cut_off"] is False


def test_the_critic_is_asked_for_the_lesson_only() -> None:
    task = get_task("weather")
    human = str(prompts.critique_messages(task, "m", "o", "dry", "dry", "CORRECT")[-1].content)
    assert "right or wrong" in human  # it is told not to judge again ...
    assert "Do not say whether" in human
    assert not re.search(r"why was the prediction", human, re.I)  # ... and not asked to


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        ("CORRECT. Watch the wind.", "Watch the wind."),
        ("Wrong: watch the wind.", "watch the wind."),
        ("The prediction was incorrect. Lesson: watch the wind.", "watch the wind."),
        ("The forecast is right, since fronts pass. Watch fronts.", "Watch fronts."),
        (
            "Correct the rule on fronts: they bring rain.",
            "Correct the rule on fronts: they bring rain.",
        ),
    ],
)
def test_a_lesson_drops_the_critics_own_verdict(reply: str, kept: str) -> None:
    assert lesson(reply) == (kept, False)


class CutCritic(FunctionChatModel):
    """The rule-based model whose critic (judge) stops at its token cap inside a word."""

    cut: str = "Watch the wind shift before fronts arr"
    """What the critic writes before its cap."""
    asked: str = "Truth: "
    """What the critic's prompt holds."""

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        critic = self.asked in str(messages[-1].content)
        text = self.cut if critic else self.respond(messages)
        message = AIMessage(
            text, response_metadata={"finish_reason": "length" if critic else "stop"}
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


async def test_a_critique_cut_at_its_token_cap_is_marked_and_flagged() -> None:
    for record in await trace_of(CutCritic(respond=rule_based(0))):
        feedback = record["feedback"]
        assert feedback["cut_off"] is True
        assert feedback["text"].endswith("Lesson: Watch the wind shift before fronts [cut off]")


async def test_the_judges_verdict_stands_and_code_adds_none() -> None:
    judge = CutCritic(
        respond=rule_based(0), cut="Verdict: implausible\nLesson: watch the wi", asked="Verdict:"
    )
    for record in await trace_of(judge, feedback="judge"):  # the truth is known, and unsaid
        assert record["correct"] is not None
        assert (
            record["feedback"]["text"] == "Judge verdict: implausible. Lesson: watch the [cut off]"
        )
        assert record["feedback"]["verdict"] == "implausible"
        assert record["feedback"]["cut_off"] is True


async def test_a_long_critique_is_clipped_at_a_word_and_marked() -> None:
    long = "remember the humidity " * 100
    for record in await trace_of(critic_says(long)):
        note = record["feedback"]["text"].split("Lesson: ")[1]
        assert len(note) <= NOTE_LIMIT
        assert note.endswith(CUT_MARK)
        assert record["feedback"]["cut_off"] is True


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab .,\n"), max_size=80),
    st.integers(12, 60),
    st.booleans(),
)
def test_clip_keeps_whole_words_within_the_limit(text: str, limit: int, cut_off: bool) -> None:
    out, cut = clip(text, limit, cut_off=cut_off)
    if not cut:
        assert out == text
        assert len(text) <= limit
        assert not cut_off
        return
    assert out.endswith(CUT_MARK.strip())
    assert len(out) <= limit
    kept = out.removesuffix(CUT_MARK.strip()).rstrip()
    assert text.startswith(kept)
    # the cut is never inside a word (unless the text kept is a single word):
    # after a model's cut (cut_off) the text may have stopped inside its last word
    following = text[len(kept) : len(kept) + 1] or ("a" if cut_off else "")
    inside_a_word = kept[-1:].isalnum() and following.isalnum()
    assert not inside_a_word or not re.search(r"\s", kept.strip())


@pytest.mark.parametrize(
    ("reply", "cut_off", "lesson_text", "flagged"),
    [
        ("Feedback: watch the wind\nPATTERNS\n- wind", True, "watch the wind", False),  # cut later
        ("Feedback: watch the wi", True, "watch the [cut off]", True),  # cut inside the line
        ("PATTERNS\n- wind turns", True, "[cut off]", True),  # cut before the line was written
        ("Feedback: watch the wind", False, "watch the wind", False),
    ],
)
def test_a_fused_reply_cut_at_its_cap_flags_a_lost_lesson(
    reply: str, cut_off: bool, lesson_text: str, flagged: bool
) -> None:
    from llm_as_rnn.core.feedback import fused_feedback, truth_feedback
    from llm_as_rnn.tasks import Score

    stated = "Predicted rain; the truth was rain: CORRECT."
    done = fused_feedback(truth_feedback(stated, Score(True, None), ""), reply, cut_off)
    assert done["text"] == f"{stated} Lesson: {lesson_text}"
    assert done["cut_off"] is flagged


def test_a_fused_judge_names_its_verdict_once() -> None:
    from llm_as_rnn.core.feedback import fused_feedback, judge_feedback
    from llm_as_rnn.tasks import Score

    pending = judge_feedback("", None, Score(None, None))
    done = fused_feedback(pending, "Feedback: Verdict: plausible: heavy rain fits the front\n")
    assert done["verdict"] == "plausible"
    assert done["text"] == "Judge verdict: plausible. heavy rain fits the front"
