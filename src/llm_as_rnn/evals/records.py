"""The evaluation's step records: one schema for every method (a ``steps.jsonl`` line).

LLM-as-RNN steps come from the graph's trace; baseline steps are built
here from their prediction. Per-step metric values depend on the task:
accuracy for a label, errors and direction for a number, Acc@k for MIMIC.
"""

from __future__ import annotations

from typing import Any

from llm_as_rnn.core.choice import truth_logprob
from llm_as_rnn.core.state import StepRecord
from llm_as_rnn.runtime.usage import Usage, total
from llm_as_rnn.tasks import Task
from llm_as_rnn.tasks.mimic import TOP_K, MimicTask, icd_category, icd_chapter
from llm_as_rnn.tasks.numbers import number


def step_metrics(
    task: Task,
    answer: Any,
    target: Any,
    distribution: dict[str, float] | None = None,
    distribution_h0: dict[str, float] | None = None,
) -> dict[str, float]:
    """Return one step's metric values (averaged per sequence by ``metrics``).

    With a label distribution (choice mode) also log-loss, Brier score and
    Acc@2; with the distribution under h_0 too, the memory's lift in nats.
    """
    if isinstance(task, MimicTask):
        truth = task.validate_target(target)
        codes = list(answer or [])[:TOP_K]
        chapters = [icd_chapter(c, truth["version"]) for c in codes]
        categories = [icd_category(c, truth["version"]) for c in codes]
        category = icd_category(truth["code"], truth["version"])
        return {
            "acc1_code": float(codes[:1] == [truth["code"]]),
            "acc5_code": float(truth["code"] in codes),
            "acc1_category": float(categories[:1] == [category]),
            "acc5_category": float(category in categories),
            "acc1_chapter": float(chapters[:1] == [truth["chapter"]]),
            "acc5_chapter": float(truth["chapter"] in chapters),
        }
    if task.kind == "regression":
        # Errors of valid answers only, coverage beside them: an unreadable
        # answer is never scored as some forecast (a 0 would flatter MAE).
        if answer is None:
            return {"coverage": 0.0}
        truth, guess = task.validate_target(target), number(answer)
        return {
            "abs_error": abs(guess - truth),
            "sq_error": (guess - truth) ** 2,
            "direction": float((guess > 0) == (truth > 0)),
            "coverage": 1.0,
        }
    out = {"accuracy": float(bool(task.score(answer, target).correct))}
    if distribution:
        out |= distribution_metrics(distribution, task.validate_target(target), distribution_h0)
    return out


def distribution_metrics(
    dist: dict[str, float], truth: str, dist_h0: dict[str, float] | None
) -> dict[str, float]:
    """Return log-loss, Brier score, Acc@2 and (with ``dist_h0``) the memory's lift."""
    ranked = sorted(dist, key=lambda label: dist[label], reverse=True)
    out = {
        "log_loss": -truth_logprob(dist, truth),
        "brier": sum((p - float(label == truth)) ** 2 for label, p in dist.items()),
    }
    if len(dist) > 2:
        out["acc_at_2"] = float(truth in ranked[:2])
    if dist_h0:
        lift = truth_logprob(dist, truth) - truth_logprob(dist_h0, truth)
        out["lift_nats"] = lift
        out["lift_positive"] = float(lift > 1e-9)
    return out


def step_record(
    task: Task,
    method: str,
    sequence: str,
    step: int,
    observation_id: str | None,
    input_text: str,
    target: Any,
    prediction: tuple[Any, str],
    usage: dict[str, Usage],
    **memory: Any,
) -> dict[str, Any]:
    """Return a ``steps.jsonl`` line; ``prediction`` is ``(answer, raw text)``.

    ``memory`` holds the LLM-as-RNN fields (feedback, memory before and
    after, its tokens, enforcement) or a baseline's ``fhc_dropped``; absent
    ones are null.
    """
    answer, text = prediction
    return {
        "task": task.name,
        "method": method,
        "sequence": sequence,
        "step": step,
        "id": observation_id,
        "input_text": input_text,
        "target": target,
        "prediction": answer,
        "prediction_text": text,
        "valid": answer is not None,
        "correct": task.score(answer, target).correct,
        "metrics": step_metrics(
            task, answer, target, memory.get("distribution"), memory.get("distribution_h0")
        ),
        "distribution": memory.get("distribution"),
        "distribution_h0": memory.get("distribution_h0"),
        "feedback": memory.get("feedback"),
        "memory_before": memory.get("memory_before"),
        "memory": memory.get("memory"),
        "memory_tokens": memory.get("memory_tokens"),
        "rewrite_rejected": memory.get("rewrite_rejected"),
        "rejection_kind": memory.get("rejection_kind"),
        "enforcement": memory.get("enforcement"),
        "fhc_dropped": memory.get("fhc_dropped"),
        **total(usage.values()),
        "usage": usage,
    }


def rnn_record(task: Task, method: str, sequence: str, step: StepRecord) -> dict[str, Any]:
    """Return the ``steps.jsonl`` line of an LLM-as-RNN step from its trace record."""
    prediction = step["prediction"]
    return step_record(
        task,
        method,
        sequence,
        step["step"],
        step["id"],
        task.render_input(step["input"]),
        step["target"],
        (prediction["answer"] if prediction["valid"] else None, prediction["text"]),
        step["usage"],
        feedback=step["feedback"]["text"],
        memory_before=step["memory_before"],
        memory=step["memory_after"],
        memory_tokens=step["memory_tokens"],
        rewrite_rejected=step["rewrite_rejected"],
        rejection_kind=step.get("rejection_kind"),
        enforcement=step["enforcement"],
        distribution=prediction.get("distribution"),
        distribution_h0=prediction.get("distribution_h0"),
    )
