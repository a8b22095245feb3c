"""How a finished step is shown: a rich panel for people, a JSON object for tools."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from llm_as_rnn.core.memory import diff_lines
from llm_as_rnn.core.state import StepRecord


def _totals(record: StepRecord) -> dict[str, float]:
    usage = record["usage"].values()
    return {
        "calls": sum(u["calls"] for u in usage),
        "prompt_tokens": sum(u["prompt_tokens"] for u in usage),
        "completion_tokens": sum(u["completion_tokens"] for u in usage),
        "retries": sum(u["retries"] for u in usage),
        "latency_s": round(sum(u["latency_s"] for u in usage), 3),
    }


def step_json(record: StepRecord) -> dict[str, Any]:
    """Return the flat JSON object printed for a step by ``--json``."""
    return {
        "step": record["step"],
        "id": record["id"],
        "input": record["input"],
        "prediction": record["prediction"]["answer"],
        "prediction_text": record["prediction"]["text"],
        "valid": record["prediction"]["valid"],
        "target": record["target"],
        "correct": record["correct"],
        "feedback": record["feedback"]["text"],
        "feedback_source": record["feedback"]["source"],
        "memory_tokens": record["memory_tokens"],
        "budget": record["budget"],
        **_totals(record),
        "rewrite_rejected": record["rewrite_rejected"],
        "rejection_reason": record["rejection_reason"],
        "enforcement": record["enforcement"],
        "usage": record["usage"],
        "memory": record["memory_after"],
    }


def diff_text(before: str, after: str) -> Text:
    """Return a coloured line diff of two memories ("(unchanged)" if equal)."""
    text = Text()
    lines = diff_lines(before, after)
    if not lines:
        return Text("(memory unchanged)", style="dim")
    for line in lines:
        if line.startswith("@@"):
            continue
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
        text.append(f"{line[:1] or ' '} {line[1:]}\n", style=style)
    return text


def step_panel(record: StepRecord, total: int | None = None) -> RenderableType:
    """Return the live view of one finished step."""
    value = record["input"]
    shown = (
        ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    )
    prediction = record["prediction"]
    answer = (
        prediction["answer"] if prediction["valid"] else f"invalid ({prediction['text'][:60]!r})"
    )
    if record["correct"] is None:
        verdict = Text("no truth", style="yellow")
    else:
        verdict = (
            Text("right", style="bold green")
            if record["correct"]
            else Text("wrong", style="bold red")
        )
    head = Text.assemble(
        ("input      ", "bold"),
        shown[:300],
        "\n",
        ("prediction ", "bold"),
        str(answer),
        "   ",
        ("truth ", "bold"),
        str(record["target"]),
        "   ",
        verdict,
        "\n",
        ("critique   ", "bold"),
        record["feedback"]["text"][:240],
    )
    totals = _totals(record)
    footer = Text(
        f"memory {record['memory_tokens']}/{record['budget']} tokens · {record['enforcement']}"
        f" · {totals['calls']:.0f} calls · {totals['prompt_tokens']:.0f}+"
        f"{totals['completion_tokens']:.0f} tokens · {totals['latency_s']} s",
        style="dim",
    )
    if record["rewrite_rejected"]:
        footer.append(f"\nrewrite rejected: {record['rejection_reason']}", style="yellow")
    label = f"step {record['step']}" + (f"/{total}" if total else "")
    if record["id"]:
        label += f" · {record['id']}"
    body = Group(
        head,
        Text("memory diff", style="bold"),
        diff_text(record["memory_before"], record["memory_after"]),
        footer,
    )
    return Panel(body, title=label, title_align="left")
