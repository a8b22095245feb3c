"""How a finished step is shown: a rich panel for people, a JSON object for tools."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from llm_as_rnn.core.branches import short_id
from llm_as_rnn.core.differences import differences, listed
from llm_as_rnn.core.memory import diff_lines
from llm_as_rnn.core.rejections import rejection_text, rejections, rejections_line
from llm_as_rnn.core.state import (
    MemoryEvent,
    StepRecord,
    clip,
)
from llm_as_rnn.errors import counted
from llm_as_rnn.evals.records import distribution_metrics
from llm_as_rnn.runtime.backends import Structuring


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
        "distribution": record["prediction"].get("distribution"),
        "target": record["target"],
        "correct": record["correct"],
        "feedback": record["feedback"]["text"],
        "feedback_source": record["feedback"]["source"],
        "memory_tokens": record["memory_tokens"],
        "budget": record["budget"],
        **_totals(record),
        "rewrite_rejected": record["rewrite_rejected"],
        "rejection_reason": record["rejection_reason"],
        "rejection_kind": record.get("rejection_kind"),
        "rejected_rewrite": record.get("rejected_rewrite"),
        "feedback_cut_off": record["feedback"].get("cut_off", False),
        "enforcement": record["enforcement"],
        "usage": record["usage"],
        "memory": record["memory_after"],
    }


def distribution_line(record: StepRecord) -> list[Any]:
    """Return the label distribution of a choice-mode step as text pieces (none otherwise)."""
    dist = record["prediction"].get("distribution")
    if not dist:
        return []
    pieces: list[Any] = [("labels     ", "bold")]
    for label, p in sorted(dist.items(), key=lambda item: -item[1]):
        style = "green" if label == record["target"] else ""
        pieces += [(f"{label} {p:.2f} ", style), ("█" * round(10 * p), style or "dim"), "  "]
    return [*pieces, "\n"]


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


def verdict(record: StepRecord) -> Text:
    """Return how a step scored: right or wrong, a regression's absolute error, or why not."""
    if record["correct"] is not None:
        if record["correct"]:
            return Text("right", style="bold green")
        return Text("wrong", style="bold red")
    error = record["feedback"].get("error")
    if error is not None:
        return Text(f"error {error:.4g}", style="bold")
    if record["target"] is None:
        return Text("no truth", style="yellow")
    return Text("no readable answer to score", style="yellow")


def glimpse(text: str, lines: int = 6, chars: int = 300) -> str:
    """Return the start of a long text for a panel: its first non-blank lines, bounded.

    A rejected rewrite may be hundreds of empty headers; a reader needs its
    first lines and how much more there is (``trace --html`` shows it all).
    """
    kept = [line for line in text.splitlines() if line.strip()]
    head, cut = clip("\n".join(kept[:lines]), chars)
    more = len(kept) - lines
    if more > 0 and not cut:
        head += f"\n... {more} more line{'s' if more > 1 else ''} (trace --html shows them)"
    return head


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
    critic = record["usage"].get("critic")  # no critic call (a frozen memory): code scored it
    critique = "critique   " if critic and critic["calls"] else "scored by code "
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
        verdict(record),
        "\n",
        *distribution_line(record),
        (critique, "bold"),
        record["feedback"]["text"],  # bounded, and marked when cut (``Feedback.cut_off``)
    )
    totals = _totals(record)
    footer = Text(
        f"memory {record['memory_tokens']}/{record['budget']} tokens · {record['enforcement']}"
        f" · {counted(int(totals['calls']), 'call')} · {totals['prompt_tokens']:.0f}+"
        f"{totals['completion_tokens']:.0f} tokens · {totals['latency_s']} s",
        style="dim",
    )
    if record["rewrite_rejected"]:
        footer.append(f"\nrewrite rejected: {rejection_text(record)}", style="yellow")
        if record.get("rejected_rewrite"):  # its start: the page (trace --html) has it all
            footer.append(f"\n{glimpse(record['rejected_rewrite'] or '')}", style="dim")
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


def run_summary(
    records: Sequence[StepRecord], structured: Structuring | None = None
) -> RenderableType:
    """Return the one-screen summary of a thread's steps: accuracy or MAE, log-loss, rewrites.

    ``structured``: how this run's memory updates were structured (``core.rejections``).
    """
    scored = [r for r in records if r["correct"] is not None]
    errors = [
        e for r in records if r["correct"] is None and (e := r["feedback"].get("error")) is not None
    ]
    head = [f"steps {len(records)}"]
    if scored or not errors:
        head.append(f"right {sum(bool(r['correct']) for r in scored)} of {len(scored)} scored")
    if errors:  # regression: the mean absolute error of the readable answers
        head.append(f"MAE {sum(errors) / len(errors):.4g} over {len(errors)} answers")
    head.append(f"invalid {sum(not r['prediction']['valid'] for r in records)}")
    lines = [" · ".join(head)]
    choice = [r for r in records if r["prediction"].get("distribution") and r["target"] is not None]
    if choice:  # the eval's own per-step formulas (evals.records)
        scores = [
            distribution_metrics(
                r["prediction"]["distribution"] or {},
                r["target"],
                r["prediction"].get("distribution_h0"),  # None: not measured (frozen)
            )
            for r in choice
        ]
        losses = [m["log_loss"] for m in scores]
        lifts = [m["lift_nats"] for m in scores if "lift_nats" in m]
        raised = sum(lift > 1e-9 for lift in lifts)
        lines.append(
            f"log-loss {sum(losses) / len(losses):.3f} nats"
            + (
                f" · memory lift {sum(lifts) / len(lifts):+.3f} nats per step (raised p(truth) "
                f"on {raised} of {len(lifts)} steps; 0 while the memory is h_0)"
                if lifts
                else ""
            )
        )
    kinds = Counter(r["enforcement"] for r in records)
    lines.append(
        rejections_line(rejections(records))
        + (
            f" (compress {kinds['compress']}, truncate {kinds['truncate']})"
            if kinds["compress"] or kinds["truncate"]
            else ""
        )
        + (f" · structured: {structured}" if structured else "")
    )
    if records:
        last = records[-1]
        lines.append(f"memory {last['memory_tokens']}/{last['budget']} tokens")
    return Panel("\n".join(lines), title="summary", title_align="left")


def settings_summary(settings: Mapping[str, Any] | None) -> str:
    """Return the settings that most often tell threads apart: model, answer mode, budget."""
    if settings is None:
        return "settings not recorded"
    models = settings.get("models") or {}
    specs = {role: _spec(identity) for role, identity in models.items()}
    shown = ", ".join(f"{role} {spec}" for role, spec in specs.items())
    model = next(iter(specs.values())) if len(set(specs.values())) == 1 else shown
    return f"{model}, {settings.get('answer_mode')}, budget {settings.get('budget')}"


def _spec(identity: Mapping[str, Any]) -> str:
    kind, name = identity.get("kind"), identity.get("name")
    return f"{kind}:{name}" if name and name != kind else str(kind)


def thread_lines(threads: Mapping[str, tuple[int, Mapping[str, Any] | None]]) -> list[str]:
    """Return one line per thread: its name, steps and the settings that tell it apart.

    A thread made for other settings (``NAME-HASH``, see ``run --thread``)
    also names what differs from its base thread ``NAME``, when that is listed.
    """
    width = max((len(name) for name in threads), default=0)
    lines = []
    for name, (steps, settings) in sorted(threads.items()):
        counted = f"{steps:>4} step" + ("" if steps == 1 else "s")
        line = f"{name.ljust(width)}  {counted:<10}  {settings_summary(settings)}"
        base, _, suffix = name.rpartition("-")
        if base in threads and len(suffix) == 8 and settings and threads[base][1]:
            changed = differences(threads[base][1] or {}, settings)
            line += f"  (vs {base}: {listed(changed, 2) or 'the data'})"
        lines.append(line)
    return lines


def event_line(event: MemoryEvent) -> str:
    """Return one line saying what a rewind or a human edit did."""
    if event["kind"] == "rewind":
        branch = short_id(event.get("branch", ""))
        return (
            f"rewound after step {event['after_step']} (from step {event.get('from_step')}; "
            f"old branch {branch}: `memory log --all` lists it, `memory show --branch {branch}` "
            f"reads it) at {event['at']}"
        )
    lines = event_diff(event)
    added = sum(line.startswith("+") for line in lines)
    removed = sum(line.startswith("-") for line in lines)
    return (
        f"human edit after step {event['after_step']} (+{added} -{removed} lines) at {event['at']}"
    )


def import_line(record: Mapping[str, Any]) -> str:
    """Return where a warm start's h_0 came from (``core.warm.WarmStart.record``)."""
    origin, source = record.get("origin") or {}, record.get("source")
    parts = [
        f"imported from thread {origin['thread']!r} step {origin.get('step')}"
        if origin.get("thread")
        else "imported (a memory text)"
    ]
    parts += [f"file {source}"] if source else []
    parts += ["edited by hand"] if record.get("edited") else []
    parts += (
        [f"truncated to {record.get('tokens')} tokens to fit λ"] if record.get("fitted") else []
    )
    return ", ".join(parts)


def event_diff(event: MemoryEvent) -> list[str]:
    """Return a human edit's unified diff ([] for a rewind)."""
    return diff_lines(event.get("memory_before", ""), event.get("memory_after", ""))


def event_view(event: MemoryEvent) -> Text:
    """Return a rewind's or a human edit's line, an edit with its diff (coloured)."""
    view = Text(event_line(event), style="bold yellow")
    for line in event_diff(event):  # none for a rewind
        style = {"+": "green", "-": "red", "@": "dim"}.get(line[:1], "")
        view.append("\n" + line, style=style)
    return view
