"""Transient faults cost time, not results; a dead server fails fast and resumes."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from subprocess import CompletedProcess

from tests.integration.serving import free_port
from tests.reliability.harness import (
    CLI,
    FaultServer,
    comparable,
    fault_server,
    record,
    run_args,
    run_cli,
    start_server,
    trace,
)

STEPS = 24


def rerun_on_restarted(server: FaultServer, seed: int, args: list[str]) -> CompletedProcess[str]:
    """Start a stopped fault server again on its port and run ``args`` against it."""
    back = start_server(port=server.port, seed=seed)
    try:
        return run_cli(args)
    finally:
        back.stop()


def test_30_percent_transient_faults_change_nothing(tmp_path: Path) -> None:
    with fault_server(seed=3) as clean:
        ref = run_cli(run_args(clean.url, tmp_path / "ref.db", "t", STEPS))
        assert ref.returncode == 0, ref.stderr[-2000:]
    with fault_server(seed=3, fault_rate=0.3, stall=2.0) as flaky:
        start = time.monotonic()
        out = run_cli(run_args(flaky.url, tmp_path / "flaky.db", "t", STEPS))
        elapsed = time.monotonic() - start
        stats = flaky.stats()
    assert out.returncode == 0, out.stderr[-2000:]
    expected, got = trace(tmp_path / "ref.db", "t"), trace(tmp_path / "flaky.db", "t")
    retries = sum(u["retries"] for r in got for u in r["usage"].values())
    record(
        "30% transient faults",
        runs=1,
        survived=1,
        steps_lost=STEPS - len(got),
        duplicate_calls=stats["duplicate_completions"],
        faults_injected=stats["faults_injected"],
        kinds=stats["faults"],
        seconds=round(elapsed, 1),
    )
    # 30% of first attempts fail, and each failure adds a request: about 0.3 / 1.3 = 23%
    # of all requests are faults, a seeded draw over some 90 of them (19% once).
    assert stats["faults_injected"] >= 0.15 * stats["requests"]
    assert len(stats["faults"]) >= 6  # most fault kinds were drawn
    assert comparable(got) == comparable(expected)
    assert retries == stats["faults_injected"]  # every fault became one visible retry


def test_no_server_fails_fast_with_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    out = run_cli(run_args(url, tmp_path / "x.db", "t", 3))
    elapsed = time.monotonic() - start
    record(
        "server down at start",
        runs=1,
        survived=0,
        seconds=round(elapsed, 1),
    )
    assert out.returncode == 2
    assert elapsed < 30
    assert out.stderr.strip().startswith(f"error: cannot reach {url}")
    assert not (tmp_path / "x.db").exists()


def test_server_dying_mid_run_then_back(tmp_path: Path) -> None:
    with fault_server(seed=4) as clean:
        assert run_cli(run_args(clean.url, tmp_path / "ref.db", "t", STEPS)).returncode == 0
    expected = trace(tmp_path / "ref.db", "t")
    dying = start_server(seed=4, max_requests=14)  # stops by itself mid-sequence
    args = run_args(dying.url, tmp_path / "d.db", "t", STEPS)
    start = time.monotonic()
    out = run_cli(args)
    elapsed = time.monotonic() - start
    dying.stop()
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert "re-run the same command to resume" in lines[-1]
    assert elapsed < 60  # retries are bounded: 4 attempts, 1 s timeout, capped backoff
    done = len(trace(tmp_path / "d.db", "t"))
    assert 0 < done < STEPS
    resumed = rerun_on_restarted(dying, 4, args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = trace(tmp_path / "d.db", "t")
    record(
        "server dies mid-run, comes back",
        runs=2,
        survived=1,
        steps_lost=STEPS - len(got),
        faults_injected=1,
        seconds_to_fail=round(elapsed, 1),
    )
    assert comparable(got) == comparable(expected)


def test_server_dying_under_two_workers_then_back(tmp_path: Path) -> None:
    """A worker's failure ends the eval with its one-line reason; the re-run completes it."""
    common = shlex.split(
        "eval --tasks weather --methods zero-shot,rnn --sequences 4 --steps 3 --budget 200 "
        "--model openai:fault-model --timeout 1 --retries 2"
    )
    with fault_server(seed=5) as clean:
        one = run_cli([*CLI, *common, "--base-url", clean.url, "--out", str(tmp_path / "one")])
        assert one.returncode == 0, one.stderr[-2000:]
    dying = start_server(seed=5, max_requests=20)
    args = [*CLI, *common, "--workers", "2", "--base-url", dying.url, "--out", str(tmp_path / "w")]
    start = time.monotonic()
    out = run_cli(args)
    elapsed = time.monotonic() - start
    dying.stop()
    assert out.returncode == 1, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: WorkerError: worker ")
    assert last.endswith("re-run the same command to resume")
    assert "Traceback" not in out.stderr
    resumed = rerun_on_restarted(dying, 5, args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record(
        "server dies under 2 eval workers, comes back",
        runs=2,
        survived=1,
        faults_injected=1,
        seconds_to_fail=round(elapsed, 1),
    )
    a = json.loads((tmp_path / "one" / "summary.json").read_text())
    b = json.loads((tmp_path / "w" / "summary.json").read_text())
    a["config"].pop("base_url"), b["config"].pop("base_url")  # two servers, two ports
    assert a == b
