"""What a critique says, as pure functions: facts, verdicts, fused feedback lines."""

from __future__ import annotations

import re
from typing import Any

from llm_as_rnn.core.state import Feedback, Prediction
from llm_as_rnn.tasks import Score, Task

_VERDICT = re.compile(r"verdict\W*(implausible|plausible)", re.I)
_FEEDBACK_LINE = re.compile(r"^\W*feedback\W*:\s*(.+)$", re.I | re.M)


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


_JUDGE_FIELD = re.compile(r"^\W*(wrong if|relied on|lesson)\W*:\s*(.+)$", re.I | re.M)


def judge_critique(text: str) -> str:
    """Return a judge's critique: its Wrong if / Relied on / Lesson lines, else its last line."""
    fields = [
        f"{m.group(1).capitalize()}: {' '.join(m.group(2).split())[:300]}"
        for m in _JUDGE_FIELD.finditer(text)
    ]
    if fields:
        return " ".join(fields)
    return text.strip().splitlines()[-1][:400] if text.strip() else ""


def judge_feedback(text: str, verdict: str | None, score: Score) -> Feedback:
    """Return the feedback of a judge's answer: its verdict and critique."""
    reason = judge_critique(text)
    return Feedback(
        text=f"Judge verdict: {verdict or 'unclear'}. {reason}".strip(),
        source="judge",
        correct=score.correct,
        error=score.error,
        verdict=verdict,
    )


def fused_feedback(feedback: Feedback, text: str) -> Feedback:
    """Complete the feedback from a fused call's ``Feedback:`` line."""
    match = _FEEDBACK_LINE.search(text)
    note = " ".join(match.group(1).split())[:400] if match else ""
    if feedback["source"] == "judge":
        verdict = parse_verdict(note)
        return Feedback(
            text=f"Judge verdict: {verdict or 'unclear'}. {note}".strip(),
            source="judge",
            correct=feedback["correct"],
            error=feedback["error"],
            verdict=verdict,
        )
    return Feedback(**{**feedback, "text": f"{feedback['text']} {note}".strip()})
