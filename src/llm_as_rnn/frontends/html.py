"""The learning trace as one self-contained HTML page: settings, plots, timeline, memory diffs."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from llm_as_rnn.core.memory import output_limit, side_by_side
from llm_as_rnn.core.rejections import rejection_text, rejections, rejections_line
from llm_as_rnn.core.state import (
    DiscardRecord,
    MemoryEvent,
    StepRecord,
)
from llm_as_rnn.evals.plots import budget_marks, pyplot, step_axis
from llm_as_rnn.frontends.terminal import event_line, import_line

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#1d2430}
h1{font-size:22px;margin:0 0 4px}.sub{color:#5b6472;margin-bottom:18px}
.plots{display:flex;gap:12px;flex-wrap:wrap}.plots figure{margin:0;flex:1 1 540px}
.plots img{width:100%;border:1px solid #dde2ea;border-radius:6px}
section.step{border:1px solid #dde2ea;border-radius:8px;margin:16px 0;padding:12px 16px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;margin-left:6px}
.right{background:#d9f2dd;color:#16632a}.wrong{background:#fadadd;color:#8a1620}
.unknown{background:#eee;color:#555}.rejected{background:#fff0c2;color:#7a5a00}
table.facts{border-collapse:collapse;width:100%;margin-bottom:8px}
table.facts th{text-align:left;width:110px;vertical-align:top;color:#5b6472;font-weight:600}
table.facts td,table.facts th{padding:3px 6px;border-top:1px solid #eef1f5}
table.diff{border-collapse:collapse;width:100%;table-layout:fixed;
 font:12px/1.4 ui-monospace,monospace}
table.diff th{background:#f3f5f8;text-align:left;padding:4px 6px}
table.diff td{padding:1px 6px;vertical-align:top;white-space:pre-wrap;word-break:break-word}
td.del{background:#fde2e4}td.add{background:#dcf5e0}td.same{color:#59606b}
pre{white-space:pre-wrap;margin:0}section.step h2,section.settings h2{font-size:16px;margin:0 0 8px}
section.settings{border:1px solid #dde2ea;border-radius:8px;margin:0 0 16px;padding:12px 16px}
table.models{border-collapse:collapse;width:100%;margin-bottom:8px}
table.models th{text-align:left;color:#5b6472;background:#f3f5f8}
table.models td,table.models th{padding:3px 6px;border-top:1px solid #eef1f5;vertical-align:top}
details{margin:4px 0}summary{cursor:pointer;color:#5b6472}
details pre{background:#f6f7f9;border-radius:4px;padding:6px;font-size:12px}
"""

ROLE_PARTS = ("models", "sampling")
"""Recorded settings shown per role, in the models table; every other one is listed below it."""


def _plot(records: Sequence[StepRecord]) -> tuple[str, str]:
    """Return the two plots (memory tokens; correctness) as base64 PNGs.

    Drawn as the evaluation's are (``evals.plots``): the axis fits the
    memories, a budget far above them is named in the legend only.
    """
    plt = pyplot()
    steps = [r["step"] for r in records]
    images = []
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.plot(steps, [r["memory_tokens"] for r in records], marker="o", label="memory tokens")
    budget_marks(ax, sorted({r["budget"] for r in records}))
    step_axis(ax, "Memory tokens over time", "tokens")
    images.append(fig)
    fig, ax = plt.subplots(figsize=(7, 2.8))
    known = [(r["step"], bool(r["correct"])) for r in records if r["correct"] is not None]
    if known:
        xs, ys = zip(*known, strict=True)
        running = [sum(ys[: i + 1]) / (i + 1) for i in range(len(ys))]
        ax.scatter(
            xs,
            ys,
            c=["#2a9d4b" if y else "#c4314b" for y in ys],
            zorder=3,
            label="right (1) / wrong (0)",
        )
        ax.plot(xs, running, color="#3465a4", marker=".", label="running accuracy")
    ax.set(ylim=(-0.1, 1.1))
    step_axis(ax, "Correctness over time", "correct")
    images.append(fig)
    encoded = []
    for figure in images:
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        plt.close(figure)
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    return encoded[0], encoded[1]


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def _setting(value: Any) -> str:
    """Return a recorded setting as short text (None: the default applies)."""
    if value is None:
        return "default"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def sampled_value(name: str, value: Any, budget: Any) -> str:
    """Return a sampling parameter as short text; an unset token cap says what it follows."""
    if name == "max_new_tokens" and value is None:  # core.calls caps it by the budget
        limit = f" (at most {output_limit(budget)})" if isinstance(budget, int) else ""
        return f"fits the memory{limit}"
    return _setting(value)


def model_label(identity: Mapping[str, Any]) -> tuple[str, str]:
    """Return a role's model as (``kind: name``, its endpoint, tokenizer, file and flags)."""
    name, kind = identity.get("name"), identity.get("kind")
    spec = f"{kind}: {name}" if name and name != kind else str(kind)
    details = [
        f"{key.replace('_', ' ')}: {_setting(value)}"
        for key, value in identity.items()
        if key not in ("kind", "name") and value not in (None, False)
    ]
    return spec, " · ".join(details)


def settings_section(settings: Mapping[str, Any] | None) -> str:
    """Return the page's opening: each role's model and sampling, then every other setting.

    ``settings`` are the thread's recorded ones (``core.identity.settings_of``):
    endpoints are stored without credentials, and the page is written through
    ``runtime.secrets.redact`` as well. The whole record is folded at the end.
    """
    e = html.escape
    if settings is None:
        return (
            "<section class='settings' id='settings'><h2>Settings</h2><p class='sub'>"
            "No settings were recorded for this thread (an older version ran it).</p></section>"
        )
    roles = settings.get("models") or {}
    sampling = settings.get("sampling") or {}
    rows = []
    for role, identity in roles.items():
        spec, details = model_label(identity)
        sampled = " · ".join(
            f"{k.replace('_', ' ')} {sampled_value(k, v, settings.get('budget'))}"
            for k, v in (sampling.get(role) or {}).items()
        )
        rows.append(
            f"<tr><td>{e(role)}</td><td><b>{e(spec)}</b></td><td>{e(details)}</td>"
            f"<td>{e(sampled)}</td></tr>"
        )
    task = settings.get("task") or {}
    attributes = task.get("attributes") or {}
    shown = {k: attributes[k] for k in ("labels", "unit", "sections") if attributes.get(k)}
    facts = [
        (
            "task",
            f"<b>{e(str(task.get('name')))}</b> <span class='sub'>{e(str(task.get('class')))}"
            f"</span><br>{e(str(attributes.get('description', '')))}"
            + "".join(f"<br>{k}: {e(_setting(v))}" for k, v in shown.items()),
        ),
        *(
            (e(name), e(_setting(value)))
            for name, value in settings.items()
            if name not in (*ROLE_PARTS, "task")
        ),
    ]
    full = json.dumps(settings, ensure_ascii=False, indent=1, sort_keys=True)
    return (
        "<section class='settings' id='settings'><h2>Settings</h2><p class='sub'>As recorded "
        "at the thread's first step (or when it was continued with new settings).</p>"
        "<table class='models'><tr><th>role</th><th>model</th><th>endpoint and details</th>"
        f"<th>sampling</th></tr>{''.join(rows)}</table>"
        "<table class='facts'>"
        + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
        + "</table><details><summary>every recorded setting (JSON)</summary>"
        f"<pre>{e(full)}</pre></details></section>"
    )


def discard_line(discard: DiscardRecord) -> str:
    """Return one discarded step as plain text: its step, id, input and prediction."""
    prediction = discard["prediction"]
    if prediction is None:
        said = "cut short before its prediction"
    else:
        answer = prediction["answer"] if prediction["valid"] else prediction["text"]
        said = f"predicted {_setting(answer)}"
    named = f" ({discard['id']})" if discard["id"] else ""
    return f"step {discard['step']}{named}: {_value(discard['input'])} -- {said}"


def discards_section(discards: Sequence[DiscardRecord]) -> str:
    """Return the page's list of discarded steps ("" when there are none)."""
    if not discards:
        return ""
    items = "".join(f"<li>{html.escape(discard_line(d))}</li>" for d in discards)
    return (
        "<section class='discards' id='discards'><h2>Discarded steps</h2><p class='sub'>"
        "Predictions dropped with <code>discard()</code> before their truth arrived; the "
        f"next prediction took their step. The memory did not change.</p><ul>{items}</ul>"
        "</section>"
    )


def _badge(record: StepRecord) -> str:
    if record["correct"] is None:
        badge = '<span class="badge unknown">no truth</span>'
    elif record["correct"]:
        badge = '<span class="badge right">right</span>'
    else:
        badge = '<span class="badge wrong">wrong</span>'
    if record["rewrite_rejected"]:
        reason = html.escape(rejection_text(record) or "")
        badge += f'<span class="badge rejected" title="{reason}">rewrite rejected</span>'
    return badge


def distribution_bars(dist: dict[str, float] | None, truth: Any) -> str:
    """Return a choice-mode step's label probabilities as inline bars (the truth marked)."""
    cells = []
    for label, p in sorted((dist or {}).items(), key=lambda item: -item[1]):
        mark = " ✓" if label == truth else ""
        cells.append(
            f"<span class='bar' style='display:inline-block;width:{round(120 * p)}px;"
            f"height:0.8em;background:#4c72b0'></span> {html.escape(label)} {p:.2f}{mark}"
        )
    return "<br>".join(cells)


def step_section(record: StepRecord) -> str:
    """Return one step's HTML section: facts, feedback and the side-by-side memory diff."""
    e = html.escape
    prediction = record["prediction"]
    answer = prediction["answer"] if prediction["valid"] else "(invalid answer)"
    facts = [
        ("input", f"<pre>{e(_value(record['input']))}</pre>"),
        (
            "prediction",
            f"<b>{e(str(answer))}</b> <span class='sub'>raw: {e(prediction['text'][:300])}</span>",
        ),
        *(
            [("labels", distribution_bars(prediction["distribution"], record["target"]))]
            if prediction.get("distribution")
            else []
        ),
        ("truth", e(_value(record["target"]))),
        ("feedback", e(record["feedback"]["text"])),
        (
            "memory",
            f"{record['memory_tokens']} / {record['budget']} tokens · {e(record['enforcement'])}",
        ),
    ]
    if record["rejection_reason"]:
        text = record.get("rejected_rewrite")
        folded = (
            f"<details class='rejected-text'><summary>what the rejected rewrite said</summary>"
            f"<pre>{e(text)}</pre></details>"
            if text
            else ""
        )
        facts.append(("rejected", e(rejection_text(record) or "") + folded))
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    title = f"Step {record['step']}" + (f" · {e(str(record['id']))}" if record["id"] else "")
    return (
        f'<section class="step" id="step-{record["step"]}"><h2>{title}{_badge(record)}</h2>'
        f'<table class="facts">{rows}</table>'
        f"{diff_table(record['memory_before'], record['memory_after'], 'memory ')}</section>"
    )


def diff_table(before: str, after: str, heading: str = "") -> str:
    """Return two memories side by side, their lines marked as kept, removed or added."""
    e = html.escape
    diff = "".join(
        f'<tr><td class="{lc}">{e(lt)}</td><td class="{rc}">{e(rt)}</td></tr>'
        for lc, lt, rc, rt in side_by_side(before, after)
    )
    head = f"<tr><th>{heading}before</th><th>{heading}after</th></tr>"
    return f'<table class="diff">{head}{diff}</table>'


def event_section(event: MemoryEvent) -> str:
    """Return a rewind's or a human edit's section (an edit with its side-by-side diff)."""
    e = html.escape
    table = diff_table(event.get("memory_before", ""), event.get("memory_after", ""))
    return (
        f'<section class="event {event["kind"]}" id="{event["kind"]}-{e(event["id"])}">'
        f"<h2>{e(event_line(event))}</h2>{table if event['kind'] == 'edit' else ''}</section>"
    )


def render_html(
    records: Sequence[StepRecord],
    thread: str,
    settings: Mapping[str, Any] | None = None,
    discards: Sequence[DiscardRecord] = (),
    events: Sequence[MemoryEvent] = (),
    imported: Mapping[str, Any] | None = None,
) -> str:
    """Return a self-contained page: settings, discarded steps, plots, one section per step.

    ``settings``: the thread's recorded ones; ``events`` (rewinds, human edits on
    every branch, oldest first) show after their step; ``imported`` (a warm start's
    record) first. The page loads no external resources.
    """
    h0 = html.escape(f"h_0 {import_line(imported)}") if imported else ""
    parts = [(0, -1, f"<section class='event import'><h2>{h0}</h2></section>")] if h0 else []
    parts += [(r["step"], 0, step_section(r)) for r in records]
    parts += [(ev["after_step"], 1, event_section(ev)) for ev in events]  # events: by time
    sections = sorted(parts, key=lambda part: part[:2])  # stable: same step, in time order
    tokens_png, correct_png = _plot(records)
    known = [r["correct"] for r in records if r["correct"] is not None]
    accuracy = f"{sum(known) / len(known):.0%} right" if known else "no truth known"
    rejected = rejections_line(rejections(records))
    e = html.escape
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>LLM-as-RNN trace · {e(thread)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Learning trace · {e(thread)}</h1>"
        f"<div class='sub'>{len(records)} steps · {accuracy} · {e(rejected)}</div>"
        f"{settings_section(settings)}{discards_section(discards)}<div class='plots'>"
        f"<figure id='plot-memory'><img alt='memory tokens over time' "
        f"src='data:image/png;base64,{tokens_png}'></figure>"
        f"<figure id='plot-correct'><img alt='correctness over time' "
        f"src='data:image/png;base64,{correct_png}'></figure>"
        "</div>" + "".join(section for _, _, section in sections) + "</body></html>"
    )
