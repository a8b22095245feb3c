"""The benchmarks' page (BENCHMARKS.md) from their JSON results: targets, verdicts, meanings.

Pure: ``page(results, meta)`` and ``verdicts(results)`` read only their
arguments (``run_all.py`` runs the scripts and gathers ``meta``), so
``tests/unit/test_bench_page.py`` renders the page from a sample. A target
that is a ratio to a floor shows the floor beside it: both come from the same
run, so a slow or busy machine moves both.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meanings import MEANINGS, Result

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Target:
    """One figure of one benchmark's JSON, the bound it must meet, and what is shown beside it."""

    benchmark: str
    figure: str
    """A dotted path in the JSON (``delta.rejected_share``)."""
    op: str
    bound: float | str
    """A number, or another figure of the same JSON (``configured_bytes``)."""
    fmt: str = ".3f"
    beside: tuple[str, ...] = ()
    """Figures shown beside it: the floor it is a ratio to, measured in the same run."""


TARGETS = [
    Target("overhead", "over_floor", "<=", 1.05, beside=("ratio", "floor_ratio")),
    Target(
        "concurrency",
        "efficiency_over_floor",
        ">=",
        0.90,
        beside=("efficiency", "floor_efficiency"),
    ),
    Target("tokens", "rnn_growth", "<=", 1.2),
    Target("tokens", "fhc_over_rnn", ">=", 10, ".2f"),
    Target("checkpoint", "growth", "<=", 1.5),
    Target("hf_throughput", "ratio", ">=", 0.9, beside=("ours_tokens_per_s", "raw_tokens_per_s")),
    Target("step_modes", "calls_per_step.three-call", "==", 3.0, ".1f"),
    Target("step_modes", "calls_per_step.fused", "==", 2.0, ".1f"),
    Target("step_modes", "calls_per_step.lazy", "<", 3.0, ".1f"),
    Target("delta_tokens", "delta_over_full", "<=", 0.10, ".4f"),
    Target("delta_embedded", "delta.changed_after_wrong", ">=", 0.60, ".2f"),
    Target("delta_embedded", "delta.rejected_share", "<=", 0.10, ".2f"),
    Target("delta_embedded", "full.rejected_share", "<=", 0.10, ".2f"),
    Target(
        "local_batching",
        "batched_over_serial",
        ">=",
        3.0,
        ".2f",
        beside=("floor_batched_over_serial",),
    ),
    Target(
        "local_batching",
        "constrained_over_free",
        ">=",
        0.9,
        beside=("free_tokens_per_s", "constrained_tokens_per_s"),
    ),
    Target("local_batching", "same_answers", "==", True),
    Target("smoke_batching", "wall_ratio", "<=", 0.5, beside=("serial_s", "batched_s")),
    Target("smoke_batching", "same_predictions", "==", True),
    Target("prefix_cache", "h0_over_predictor_prefill", "<=", 0.20, beside=("h0_token_share",)),
    Target("prefix_cache", "peak_cache_bytes", "<=", "configured_bytes", ".0f"),
    Target("prefix_cache", "same_answers", "==", True),
    Target("threads", "worst_default_over_best", "<=", 1.10, beside=("default_threads",)),
]


@dataclass(frozen=True)
class Verdict:
    """One target's row of the page."""

    benchmark: str
    measured: str
    beside: str
    target: str
    met: bool


def figure(result: Result, path: str) -> Any:
    """Return the figure at a dotted path of a result."""
    value: Any = result
    for key in path.split("."):
        value = value[key]
    return value


def shown(value: Any, fmt: str = ".3f") -> str:
    """Return a figure as the page shows it (numbers formatted, anything else as is)."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:{fmt}}" if is_number else str(value)


MISSING = "missing"
"""How the page shows a figure the results do not have (its target is then missed)."""


def found(result: Result, path: str) -> Any:
    """Return the figure at ``path``, or ``MISSING`` when the results lack it (or hold null)."""
    try:
        value = figure(result, path)
    except (KeyError, TypeError):
        return MISSING
    return MISSING if value is None else value


def verdict(target: Target, result: Result | None) -> Verdict:
    """Check one target against its benchmark's result: failed or missing data misses it."""
    if result is None:
        return Verdict(target.benchmark, "not in the results", "", target.op, False)
    if "failed" in result:
        return Verdict(target.benchmark, f"failed: {result['failed']}", "", target.op, False)
    value = found(result, target.figure)
    bound = target.bound
    limit = found(result, bound) if isinstance(bound, str) else bound
    said = f"{target.op} {bound} ({shown(limit, target.fmt)})" if isinstance(bound, str) else None
    return Verdict(
        target.benchmark,
        f"{target.figure} = {shown(value, target.fmt)}",
        ", ".join(f"{b} = {shown(found(result, b))}" for b in target.beside),
        said or f"{target.op} {shown(limit, 'g')}",
        holds(target.op, value, limit),
    )


def holds(op: str, value: Any, limit: Any) -> bool:
    """Return whether ``value op limit`` holds; a missing or ill-typed figure never does."""
    if MISSING in (value, limit) or isinstance(value, str | list | dict):
        return False
    try:
        return bool(OPS[op](value, limit))
    except TypeError:
        return False


def as_results(results: Any) -> dict[str, Result]:
    """Return ``results`` with every entry a result: anything else reads as a failed run."""
    if not isinstance(results, dict):
        return {}
    return {
        name: r if isinstance(r, dict) else {"failed": f"not a result: {json.dumps(r)[:80]}"}
        for name, r in results.items()
    }


def verdicts(results: dict[str, Result]) -> list[Verdict]:
    """Return every target's verdict (a benchmark missing from ``results`` misses its own)."""
    results = as_results(results)
    return [verdict(t, results.get(t.benchmark)) for t in TARGETS]


def load(triple: Any) -> str:
    """Return a load average triple as the page shows it (``missing`` if it is not one)."""
    try:
        return " / ".join(f"{x:.2f}" for x in triple)
    except (TypeError, ValueError):
        return MISSING


def meaning(name: str, result: Result) -> str:
    """Return a benchmark's section, or say what its results lack (never raise)."""
    if "failed" in result:
        return f"**{name}**: failed ({result['failed']})."
    try:
        return MEANINGS[name](result)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return f"**{name}**: incomplete results, not explained ({exc.__class__.__name__}: {exc})."


def page(results: dict[str, Result], meta: dict[str, Any]) -> str:
    """Return BENCHMARKS.md for one run: header, targets, each script's run, what each means."""
    results = as_results(results)
    meta = {k: MISSING for k in ("started", "finished", "commit", "cpu", "cores", "python")} | {
        k: v for k, v in (meta if isinstance(meta, dict) else {}).items() if v is not None
    }
    kind = (
        "`make bench-quick` (a quick run: reduced sizes, the same keys and targets; BENCHMARKS.md"
        " holds `make bench`'s full run)"
        if meta.get("quick")
        else "`make bench`"
    )
    rows = "\n".join(
        f"| {v.benchmark} | {v.measured} | {v.beside} | {v.target} | "
        f"{'met' if v.met else '**missed**'} |"
        for v in verdicts(results)
    )
    runs = "\n".join(
        f"| {name} | {shown(r.get('run_seconds', MISSING), '.0f')} | "
        f"{load(r.get('load_before'))} | {load(r.get('load_after'))} | "
        f"{'failed' if 'failed' in r else 'ok'} |"
        for name, r in results.items()
    )
    meanings = "\n\n".join(meaning(name, r) for name, r in results.items())
    return f"""# Benchmarks

Written by `benchmarks/run_all.py` through {kind}, from {meta["started"]} to {meta["finished"]} UTC,
commit {meta["commit"]}, on {meta["cpu"]} ({meta["cores"]} cores), Python {meta["python"]}.
Load average (1 / 5 / 15 min) before the run {load(meta.get("load_before"))}, after it
{load(meta.get("load_after"))}. Every figure is the median of the repetitions made in that one
run; a target on a shared machine is a ratio to a peer measured beside it in the same run
(the floor), never a time. Such a ratio (`over_floor`, `efficiency_over_floor`) is the median
of the ratios of pairs run back to back, ours then the floor's, so it is not the quotient of
the two medians shown beside it. Each script prints one JSON object as its last line; run one
alone with `.venv/bin/python benchmarks/<name>.py` (`LLM_AS_RNN_BENCH_QUICK=1`: reduced).

| benchmark | measured | beside it (same run) | target | |
|---|---|---|---|---|
{rows}

Each script's run (seconds, and the load average before and after it):

| script | seconds | load before | load after | |
|---|---|---|---|---|
{runs}

## What each number means

{meanings}
"""
