"""What a critique says, as pure functions: facts, verdicts, lessons, fused feedback lines.

With the truth known, right or wrong is the task's score: the verdict line is
written by code (``fact``) and the critic writes only the lesson, whose own
verdicts are dropped (``lesson``) so the two never contradict each other. In
judge mode the verdict is the judge's, read from its reply. A critique cut at
its token cap or at ``NOTE_LIMIT`` ends with ``CUT_MARK`` and is flagged.
"""

from __future__ import annotations

import re
from typing import Any

from llm_as_rnn.core.state import NOTE_LIMIT, Feedback, Prediction, clip
from llm_as_rnn.tasks import Score, Task
from llm_as_rnn.tasks.markdown import clean

VERDICTS = ("plausible", "implausible")
"""A judge's verdicts (``Verdict: <one>``, its answer's first line)."""
JUDGE_FIELDS = ("Wrong if", "Relied on", "Lesson")
"""The lines of a judge's answer after its verdict, in order (``<name>: <text>``)."""
_VERDICT = re.compile(r"verdict\W*(implausible|plausible)", re.I)
_FEEDBACK_LINE = re.compile(r"^\W*feedback\W*:\s*(.+)$", re.I | re.M)
_VERDICT_WORDS = r"(?:correct|incorrect|wrong|right|accurate|inaccurate)"
_OWN_VERDICT = re.compile(
    r"^\W*(?:(?:lesson|feedback)\s*:\s*"  # a label: the feedback names the lesson itself
    rf"|(?:(?:verdict|result|outcome)\W*)?{_VERDICT_WORDS}\s*[.!:;,-]+\s*"  # "CORRECT."
    r"|(?:the\s+)?(?:prediction|forecast|answer|guess)\s+(?:was|is)\s+(?:not\s+)?"
    rf"{_VERDICT_WORDS}\b[^.!?]*[.!?]\s*)",  # "The prediction was incorrect ..."
    re.I,
)


def parse_verdict(text: str) -> str | None:
    """Read a judge's verdict: ``plausible``, ``implausible`` or None."""
    match = _VERDICT.search(text)
    if match:
        return match.group(1).lower()
    lowered = text.lower()
    if "implausible" in lowered or "not plausible" in lowered:
        return "implausible"
    if "plausible" in lowered:
        return "plausible"
    return None


def fact(task: Task, answer: str, target: Any, score: Score) -> str:
    """State what the truth says of a prediction, without a model."""
    return f"Predicted {answer}; the truth was {task.render_target(target)}: {task.outcome(score)}."


def lesson(reply: str, cut_off: bool = False) -> tuple[str, bool]:
    """Return the lesson of a critic's reply, and whether it lost its end.

    Control characters (``tasks.markdown.clean``, as in a memory) are dropped and
    whitespace is collapsed; opening verdicts of the critic's own ("CORRECT.",
    "The prediction was wrong.") and a ``Lesson:`` label are dropped, since
    the verdict is the score's; the text is clipped to ``NOTE_LIMIT``.
    """
    text = " ".join(clean(reply).split())
    while match := _OWN_VERDICT.match(text):
        text = text[match.end() :]
    return clip(text, NOTE_LIMIT, cut_off=cut_off)


def truth_feedback(stated: str, score: Score, reply: str, cut_off: bool = False) -> Feedback:
    """Return supervised feedback: the verdict line ``stated`` by code, then the lesson."""
    note, cut = lesson(reply, cut_off)
    return Feedback(
        text=f"{stated} Lesson: {note}" if note else stated,
        source="truth",
        correct=score.correct,
        error=score.error,
        verdict=None,
        cut_off=cut,
    )


def answer_text(task: Task, prediction: Prediction) -> str:
    """Render a prediction for a prompt (an invalid one with its raw reply)."""
    if prediction["valid"]:
        return task.render_target(prediction["answer"])
    return f"(no valid answer; raw reply: {prediction['text'][:200]!r})"


def was_right(feedback: Feedback) -> bool:
    """Return whether a step needs no correction (right, or judged plausible)."""
    if feedback["correct"] is not None:
        return bool(feedback["correct"])
    return feedback.get("verdict") == "plausible"


_JUDGE_FIELD = re.compile(
    rf"^\W*({'|'.join(name.lower() for name in JUDGE_FIELDS)})\W*:\s*(.+)$", re.I | re.M
)


def judge_critique(text: str) -> str:
    """Return a judge's critique: its Wrong if / Relied on / Lesson lines, else its last line."""
    fields = [
        f"{m.group(1).capitalize()}: {' '.join(m.group(2).split())}"
        for m in _JUDGE_FIELD.finditer(text)
    ]
    if fields:
        return " ".join(fields)
    return text.strip().splitlines()[-1] if text.strip() else ""


_LEADING_VERDICT = re.compile(r"^\W*(?:verdict\W*)?(?:implausible|plausible)\b[\s.:;,!-]*", re.I)


def judge_feedback(text: str, verdict: str | None, score: Score, cut_off: bool = False) -> Feedback:
    """Return the feedback of a judge's answer: its verdict and critique (clipped, flagged).

    The verdict is shown once, first: a critique opening with it again loses that opening.
    Control characters are dropped, as from a memory (``tasks.markdown.clean``).
    """
    critique = _LEADING_VERDICT.sub("", clean(judge_critique(text)), count=1)
    reason, cut = clip(critique, NOTE_LIMIT, cut_off=cut_off)
    return Feedback(
        text=f"Judge verdict: {verdict or 'unclear'}. {reason}".strip(),
        source="judge",
        correct=score.correct,
        error=score.error,
        verdict=verdict,
        cut_off=cut,
    )


def fused_feedback(feedback: Feedback, text: str, cut_off: bool = False) -> Feedback:
    """Complete the feedback from a fused call's ``Feedback:`` line.

    A reply cut at its token cap (``cut_off``) lost its lesson when the cut
    came before or inside that line (nothing follows it): the feedback is flagged.
    """
    match = _FEEDBACK_LINE.search(text)
    note = match.group(1) if match else ""
    cut = cut_off and (match is None or not text[match.end() :].strip())
    score = Score(feedback["correct"], feedback["error"])
    if feedback["source"] == "judge":
        return judge_feedback(note, parse_verdict(note), score, cut)
    return truth_feedback(feedback["text"], score, note, cut)
