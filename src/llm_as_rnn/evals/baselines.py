"""The baselines' prompts: zero-shot, full-history concatenation, MemPrompt.

Pure functions of the task, the past records and the new observation; the
runner makes the calls. Each baseline makes one model call per step (plus a
re-ask when the answer cannot be read).

- zero-shot: the current input only.
- FHC (full-history concatenation): every past input with its true outcome,
  oldest first, then the current input; the oldest entries are dropped when
  the prompt would overflow the model's context window (the drops are counted).
- MemPrompt (Madaan et al. 2022), closest-match variant: a growing memory of
  (input, feedback) entries; the ``k`` entries most similar to the current
  input (cosine similarity of word counts) are put in the prompt. The
  feedback of an entry is what the truth said of the prediction.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from llm_as_rnn.core.prompts import DATA_RULE, ask, data
from llm_as_rnn.tasks import Task

MEMPROMPT_K = 3


def _question(task: Task, observation: str) -> str:
    return ask(task, "Current observation", observation)


def zero_shot_messages(task: Task, observation: str) -> list[BaseMessage]:
    """Build the zero-shot prompt: the task and the current input only."""
    return [
        SystemMessage(f"{task.description}\n\n{DATA_RULE}"),
        HumanMessage(_question(task, observation)),
    ]


def history_entry(task: Task, record: dict[str, Any]) -> str:
    """Render one past step with its true outcome for FHC."""
    outcome = task.render_target(record["target"])
    return f"Step {record['step']}:\n{record['input_text']}\nTrue outcome: {outcome}"


def fhc_messages(
    task: Task,
    history: Sequence[dict[str, Any]],
    observation: str,
    count: Callable[[str], int],
    limit: int,
) -> tuple[list[BaseMessage], int]:
    """Build the FHC prompt within ``limit`` tokens; return it and how many entries were dropped."""
    entries = [history_entry(task, r) for r in history]
    base = zero_shot_messages(task, observation)
    base_tokens = sum(count(str(m.content)) for m in base) + 32
    sizes = [count(e) + 2 for e in entries]
    dropped = 0
    while dropped < len(entries) and base_tokens + sum(sizes[dropped:]) > limit:
        dropped += 1
    kept = entries[dropped:]
    past = "\n\n".join(kept) if kept else "(none yet)"
    human = (
        f"Past steps, oldest first, with their true outcomes:\n{data('history', past)}\n\n"
        + _question(task, observation)
    )
    system = f"{task.description}\n\n{DATA_RULE.replace('<prediction>', '<history>')}"
    return [SystemMessage(system), HumanMessage(human)], dropped


def words(text: str) -> Counter[str]:
    """Return the bag of lower-cased word and number tokens of a text."""
    return Counter(re.findall(r"[a-z]+|\d+(?:\.\d+)?", text.lower()))


def cosine(a: Counter[str], b: Counter[str]) -> float:
    """Return the cosine similarity of two bags of words."""
    dot = sum(a[k] * b[k] for k in a.keys() & b.keys())
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def closest(
    history: Sequence[dict[str, Any]], observation: str, k: int = MEMPROMPT_K
) -> list[dict[str, Any]]:
    """Return the ``k`` past entries most similar to the observation (ties: most recent)."""
    query = words(observation)
    ranked = sorted(
        history, key=lambda r: (cosine(words(r["input_text"]), query), r["step"]), reverse=True
    )
    return ranked[:k]


def feedback_of(task: Task, record: dict[str, Any]) -> str:
    """Return the MemPrompt feedback of a past step: what the truth said of it."""
    predicted = task.render_target(record["prediction"])
    return f"you predicted {predicted}; the truth was {task.render_target(record['target'])}"


def memprompt_messages(
    task: Task, history: Sequence[dict[str, Any]], observation: str, k: int = MEMPROMPT_K
) -> list[BaseMessage]:
    """Build the MemPrompt prompt with the ``k`` closest past (input, feedback) entries."""
    chosen = closest(history, observation, k)
    notes = (
        "\n\n".join(
            f"Similar past step {r['step']}:\n{r['input_text']}\nFeedback: {feedback_of(task, r)}"
            for r in chosen
        )
        or "(none yet)"
    )
    system = f"{task.description}\n\n{DATA_RULE.replace('<prediction>', '<feedback>')}"
    human = f"Feedback on similar past steps:\n{data('feedback', notes)}\n\n" + _question(
        task, observation
    )
    return [SystemMessage(system), HumanMessage(human)]
