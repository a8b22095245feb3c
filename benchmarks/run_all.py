"""Run every benchmark and write the page (``make bench``, ``make bench-quick``).

Each script prints one JSON object as its last line; this runs them one
after another, adds each one's wall seconds and the load average before and
after it, and writes the page (``page.py``) with the machine and the whole
run's load. ``make bench`` writes BENCHMARKS.md; ``make bench-quick``
(``LLM_AS_RNN_BENCH_QUICK=1``: every script at its reduced size, about 10
minutes) writes BENCHMARKS-quick.md, never the full figures. A script that
fails is shown failed on the page (its targets missed) and the others still
run; the exit code is 1 if any target is missed. ``--page-only [RESULTS]``
re-renders a page from saved results (default: the last run's, in
``.cache/``), into the page of the kind of run they record (quick or full),
or into ``--out PAGE``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
from page import page, verdicts

HERE = Path(__file__).resolve().parent

RUNS: list[tuple[str, str, dict[str, str]]] = [
    ("overhead", "overhead.py", {}),
    ("concurrency", "concurrency.py", {}),
    ("tokens", "tokens.py", {}),
    ("checkpoint", "checkpoint.py", {}),
    ("hf_throughput", "hf_throughput.py", {}),
    ("step_modes", "step_modes.py", {}),
    ("step_modes_embedded", "step_modes.py", {"STEP_MODES_MODEL": "embedded"}),
    ("delta_tokens", "delta_tokens.py", {}),
    ("delta_embedded", "delta_embedded.py", {}),
    ("local_batching", "local_batching.py", {}),
    ("smoke_batching", "smoke_batching.py", {}),
    ("memory_first", "memory_first.py", {}),
    ("grammar_mask", "grammar_mask.py", {}),
    ("prefix_cache", "prefix_cache.py", {}),
    ("threads", "threads.py", {}),
]
"""(name on the page, script, extra environment) of every benchmark, in the order run."""


def loadavg() -> list[float]:
    """Return the 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


SCRIPT_TIMEOUT_S = 3600.0
"""A script still running after this long is stopped and shown failed."""


def run(script: str, env: dict[str, str], timeout: float = SCRIPT_TIMEOUT_S) -> dict[str, Any]:
    """Run one script; return its JSON with its seconds and load, or what failed.

    A script that exits non-zero, runs past ``timeout``, or whose last line is
    not a JSON object is a failed result: the other scripts still run.
    """
    print(f"== {script} {' '.join(f'{k}={v}' for k, v in env.items())}", file=sys.stderr)
    before, start = loadavg(), time.perf_counter()
    result = outcome(script, env, timeout)
    result |= {
        "run_seconds": round(time.perf_counter() - start, 1),
        "load_before": before,
        "load_after": loadavg(),
    }
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def outcome(script: str, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Return a script's last line as a JSON object, or ``{"failed": why}``."""
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / script)],
            cwd=common.REPO,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"still running after {timeout:.0f} s: stopped"}
    sys.stderr.write(done.stderr[-3000:])
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": f"exit code {done.returncode}: {last[:200]}"}
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        return {"failed": f"its last line is not a JSON object: {lines[-1][:200]}"}
    return result


def cpu_model() -> str:
    """Return the CPU's model name (``/proc/cpuinfo``), or the platform's word for it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    """Return the checkout's commit (short), marked when the tree has changes.

    The pages this runner writes are not changes: an earlier run's page left in
    the tree says nothing about the code measured.
    """
    git = ["git", "-C", str(common.REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    pages = [f":(exclude){outputs_of(quick).name}" for quick in (True, False)]
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", ".", *pages], capture_output=True, text=True
    )
    return (head.stdout.strip() or "unknown") + (" (with changes)" if dirty.stdout.strip() else "")


def now() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M}"


def outputs() -> tuple[Path, Path]:
    """Return where this run saves its results and its page: a quick run never overwrites
    the full run's."""
    suffix = "-quick" if common.quick() else ""
    return common.REPO / ".cache" / f"bench_results{suffix}.json", outputs_of(common.quick())


def outputs_of(quick: bool) -> Path:
    """Return the page of a quick or a full run."""
    return common.REPO / f"BENCHMARKS{'-quick' if quick else ''}.md"


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run every benchmark and write the page.")
    parser.add_argument(
        "--page-only",
        nargs="?",
        const="",
        metavar="RESULTS",
        help="re-render the page from saved results (default: the last run's)",
    )
    parser.add_argument("--out", type=Path, help="write the page here instead")
    return parser.parse_args(argv)


def saved_run(path: Path) -> dict[str, Any]:
    """Return a run record saved by ``main``; exit 2 with one line if there is none."""
    try:
        record = json.loads(path.read_text())
        if not isinstance(record.get("results"), dict) or not isinstance(record.get("meta"), dict):
            raise ValueError("no 'results' and 'meta'")
    except (OSError, ValueError, AttributeError) as exc:
        print(
            f"error: no saved benchmark results at {path} ({exc.__class__.__name__}): "
            "run make bench or make bench-quick first, or pass a results file: "
            "run_all.py --page-only RESULTS.json",
            file=sys.stderr,
        )
        sys.exit(2)
    return record


def main(argv: list[str] | None = None) -> None:
    args = arguments(sys.argv[1:] if argv is None else argv)
    saved, out = outputs()
    if args.page_only is not None:
        run_record = saved_run(Path(args.page_only) if args.page_only else saved)
        out = outputs_of(bool(run_record["meta"].get("quick")))
    else:
        saved.parent.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "started": now(),
            "quick": common.quick(),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "commit": commit(),
            "load_before": loadavg(),
        }
        results: dict[str, Any] = {}
        for name, script, env in RUNS:
            results[name] = run(script, env)
            saved.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        meta |= {"finished": now(), "load_after": loadavg()}
        run_record = {"meta": meta, "results": results}
        saved.write_text(json.dumps(run_record, indent=1))
    out = args.out or out
    out.write_text(page(run_record["results"], run_record["meta"]))
    missed = [v for v in verdicts(run_record["results"]) if not v.met]
    print(f"wrote {out.name}; targets missed: {len(missed)}", file=sys.stderr)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
