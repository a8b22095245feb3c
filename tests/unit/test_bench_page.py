"""The benchmarks' page and verdicts, as pure functions of a sample run (no benchmark is run).

The sample (``tests/fixtures/bench/results.json``) has the shape ``run_all``
saves: every benchmark of ``RUNS`` with the keys its script emits. Every key
the page reads must be in the sample (rendering it raises otherwise) and be
one the script itself writes (its name is a string in the script's source).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import meanings  # noqa: E402
import page  # noqa: E402
import run_all  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "bench" / "results.json"
ADDED_BY_RUN_ALL = {"run_seconds", "load_before", "load_after", "failed"}


def sample() -> dict[str, Any]:
    return dict(json.loads(SAMPLE.read_text()))


class Reads(dict[str, Any]):
    """A dict that records every key read from it (nested dicts too)."""

    def __init__(self, data: dict[str, Any], seen: set[str]) -> None:
        super().__init__(data)
        self.seen = seen

    def __getitem__(self, key: str) -> Any:
        self.seen.add(key)
        value = super().__getitem__(key)
        return Reads(value, self.seen) if isinstance(value, dict) else value


def keys_read(name: str) -> set[str]:
    """Return the keys the page reads from one benchmark's result (names, not data keys)."""
    run = sample()
    seen: set[str] = set()
    results = dict(run["results"])
    results[name] = Reads(results[name], seen)
    page.page(results, run["meta"])
    return {k for k in seen - ADDED_BY_RUN_ALL if not k.isdigit()}


def test_the_sample_and_the_page_cover_every_benchmark_run() -> None:
    names = [name for name, _, _ in run_all.RUNS]
    assert list(sample()["results"]) == names
    assert set(meanings.MEANINGS) == set(names)
    assert {t.benchmark for t in page.TARGETS} <= set(names)
    text = page.page(sample()["results"], sample()["meta"])
    for name, script, _ in run_all.RUNS:
        assert f"`{script}`" in text, name  # each section names its script


@pytest.mark.parametrize(
    ("name", "script"),
    [(name, script) for name, script, _ in run_all.RUNS],
)
def test_every_key_the_page_reads_is_written_by_its_script(name: str, script: str) -> None:
    source = (BENCHMARKS / script).read_text()
    read = keys_read(name)
    assert read, f"the page reads nothing of {name}"
    unwritten = sorted(k for k in read if f'"{k}"' not in source)
    assert not unwritten, f"{script} does not write {unwritten}"


def test_verdicts_follow_the_figures_and_their_floors() -> None:
    run = sample()
    results = run["results"]
    by_figure = {v.measured.split(" = ")[0]: v for v in page.verdicts(results)}
    assert by_figure["over_floor"].met
    assert "floor_ratio = 1.117" in by_figure["over_floor"].beside
    assert "floor_efficiency" in by_figure["efficiency_over_floor"].beside
    worse = copy.deepcopy(results)
    worse["overhead"]["over_floor"] = 1.06
    worse["concurrency"]["efficiency_over_floor"] = 0.89
    worse["prefix_cache"]["peak_cache_bytes"] = worse["prefix_cache"]["configured_bytes"] + 1
    worse["delta_embedded"]["delta"]["changed_after_wrong"] = 0.5
    missed = {v.measured.split(" = ")[0] for v in page.verdicts(worse) if not v.met}
    assert {
        "over_floor",
        "efficiency_over_floor",
        "peak_cache_bytes",
        "delta.changed_after_wrong",
    } <= missed
    assert "delta.rejected_share" in missed  # the sample's own miss (0.33 > 0.10)
    assert "ratio" not in missed  # the absolute ratio is shown, never judged


def test_a_failed_benchmark_misses_its_targets_and_the_page_says_why() -> None:
    run = sample()
    run["results"]["smoke_batching"] = {
        "failed": "exit code 1: RuntimeError: boom",
        "run_seconds": 3.0,
        "load_before": [1.0, 1.0, 1.0],
        "load_after": [1.0, 1.0, 1.0],
    }
    smoke = [v for v in page.verdicts(run["results"]) if v.benchmark == "smoke_batching"]
    assert smoke
    assert not any(v.met for v in smoke)
    text = page.page(run["results"], run["meta"])
    assert "**smoke_batching**: failed (exit code 1: RuntimeError: boom)." in text


def test_a_missing_script_is_a_failed_result_with_its_load() -> None:
    result = run_all.run("no_such_benchmark.py", {})
    assert result["failed"].startswith("exit code 2")
    assert len(result["load_before"]) == len(result["load_after"]) == 3


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("print('done')", "its last line is not a JSON object: done"),
        ("print('[1, 2]')", "its last line is not a JSON object: [1, 2]"),
        ("import time; time.sleep(30)", "still running after 1 s: stopped"),
    ],
)
def test_a_script_that_hangs_or_prints_no_json_is_a_failed_result(
    tmp_path: Path, source: str, why: str
) -> None:
    script = tmp_path / "bench.py"
    script.write_text(source)
    result = run_all.run(str(script), {}, timeout=1.0)
    assert result["failed"] == why
    assert len(result["load_before"]) == len(result["load_after"]) == 3


def test_the_page_records_the_machine_the_load_and_the_kind_of_run() -> None:
    run = sample()
    quick = page.page(run["results"], run["meta"])
    full = page.page(run["results"], run["meta"] | {"quick": False})
    for text in (quick, full):
        assert "AMD EPYC 7B13 (2 cores)" in text
        assert "2026-12-03 07:00 to 2026-12-03 07:09 UTC" in text
        assert "before the run 1.20 / 1.10 / 1.00, after it\n1.90 / 1.40 / 1.10" in text
    assert "make bench-quick" in quick
    assert "make bench-quick" not in full


def test_a_quick_run_writes_its_own_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_AS_RNN_BENCH_QUICK", "1")
    assert run_all.outputs()[1].name == "BENCHMARKS-quick.md"
    monkeypatch.delenv("LLM_AS_RNN_BENCH_QUICK")
    assert run_all.outputs()[1].name == "BENCHMARKS.md"


def test_a_quick_runs_delta_embedded_has_no_free_text_rows_and_says_so() -> None:
    full = meanings.delta_embedded(sample()["results"]["delta_embedded"])
    quick_result = copy.deepcopy(sample()["results"]["delta_embedded"])
    quick_result["free_text"] = None  # what delta_embedded.py emits in a quick run
    quick = meanings.delta_embedded(quick_result)
    assert "free text (before)" in full
    assert "free text (before)" not in quick
    assert "| full, structured |" in quick
    assert "| delta, structured |" in quick
    assert "a quick run: no free-text rows" in quick


def test_floors_stand_beside_the_batching_and_prefix_figures() -> None:
    results = sample()["results"]
    text = page.page(results, sample()["meta"])
    batching = next(line for line in text.splitlines() if "| batched_over_serial" in line)
    floor = results["local_batching"]["floor_batched_over_serial"]
    assert f"floor_batched_over_serial = {floor:.3f}" in batching
    prefix = next(line for line in text.splitlines() if "h0_over_predictor_prefill =" in line)
    assert f"h0_token_share = {results['prefix_cache']['h0_token_share']:.3f}" in prefix


def test_a_quick_runs_local_batching_leaves_out_the_unequal_lengths_ratio() -> None:
    result = copy.deepcopy(sample()["results"]["local_batching"])
    assert "At unequal lengths" in meanings.local_batching(result)
    result["unequal_lengths_ratio"] = None  # what local_batching.py emits in a quick run
    text = meanings.local_batching(result)
    assert "At unequal lengths" not in text
    assert f"constrained_over_free =\n{result['constrained_over_free']:.3f}." in text


def page_only(tmp_path: Path, *args: str, quick: str | None = None) -> Any:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "LLM_AS_RNN_BENCH_QUICK"}
    if quick is not None:
        env["LLM_AS_RNN_BENCH_QUICK"] = quick
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--page-only", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize("value", ["true", "yes", "2", "quick", "１"])
def test_a_quick_flag_other_than_1_or_0_is_refused_in_one_line(tmp_path: Path, value: str) -> None:
    out = tmp_path / "page.md"
    done = page_only(tmp_path, str(SAMPLE), "--out", str(out), quick=value)
    assert done.returncode == 2
    assert done.stderr.startswith("error: LLM_AS_RNN_BENCH_QUICK must be 1")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("content", [None, "not json", "[1, 2]", '{"results": {}}'])
def test_page_only_without_saved_results_says_how_to_make_them(
    tmp_path: Path, content: str | None
) -> None:
    results, out = tmp_path / "results.json", tmp_path / "page.md"
    if content is not None:
        results.write_text(content)
    done = page_only(tmp_path, str(results), "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: no saved benchmark results at {results}")
    assert "make bench" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_page_only_renders_a_given_results_file(tmp_path: Path) -> None:
    out = tmp_path / "page.md"
    done = page_only(tmp_path, str(SAMPLE), "--out", str(out), quick="0")
    assert done.returncode in (0, 1), done.stderr  # 1: a target of the sample is missed
    assert out.read_text() == page.page(sample()["results"], sample()["meta"])


@pytest.mark.parametrize("quick", [True, False])
def test_page_only_writes_the_page_of_the_kind_of_run_it_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick: bool
) -> None:
    record = sample()
    record["meta"]["quick"] = quick
    results = tmp_path / "results.json"
    results.write_text(json.dumps(record))
    monkeypatch.delenv("LLM_AS_RNN_BENCH_QUICK", raising=False)  # the env says: full
    monkeypatch.setattr(run_all, "outputs_of", lambda q: tmp_path / f"page-{q}.md")
    with pytest.raises(SystemExit):
        run_all.main(["--page-only", str(results)])
    assert [p.name for p in tmp_path.glob("page-*.md")] == [f"page-{quick}.md"]


def test_the_sample_page_lacks_nothing() -> None:
    """The page tolerates missing data (below); the sample must still have every key it reads."""
    text = page.page(sample()["results"], sample()["meta"])
    for sign in ("missing", "incomplete results", "not in the results"):
        assert sign not in text


@pytest.mark.parametrize(
    ("benchmark", "key", "value"),
    [
        ("overhead", "over_floor", None),
        ("overhead", "over_floor", "drop"),
        ("overhead", "floor_ratio", "drop"),
        ("prefix_cache", "configured_bytes", "drop"),
        ("concurrency", "efficiency_over_floor", float("nan")),
    ],
)
def test_missing_figures_miss_their_target_and_the_page_still_renders(
    benchmark: str, key: str, value: Any
) -> None:
    run = sample()
    result = run["results"][benchmark]
    if value == "drop":
        del result[key]
    else:
        result[key] = value
    text = page.page(run["results"], run["meta"])
    rows = [v for v in page.verdicts(run["results"]) if v.benchmark == benchmark]
    touched = [v for v in rows if key in v.measured or key in v.target or key in v.beside]
    assert touched
    if key in ("over_floor", "efficiency_over_floor", "configured_bytes"):
        assert not any(v.met for v in touched if key in v.measured or key in v.target)
    assert f"| {benchmark} |" in text


def test_a_missing_benchmark_and_an_unfinished_run_are_said_not_raised() -> None:
    run = sample()
    del run["results"]["smoke_batching"]
    del run["results"]["threads"]["load_after"]
    del run["meta"]["finished"]
    text = page.page(run["results"], run["meta"])
    assert "| smoke_batching | not in the results |" in text
    assert not any(v.met for v in page.verdicts(run["results"]) if v.benchmark == "smoke_batching")
    assert "to missing UTC" in text


@pytest.mark.parametrize(
    ("benchmark", "key"),
    [
        ("smoke_batching", "same_predictions"),
        ("prefix_cache", "same_answers"),
        ("local_batching", "same_answers"),
    ],
)
def test_different_answers_miss_a_target_whatever_the_speed(benchmark: str, key: str) -> None:
    def missed(results: dict[str, Any]) -> set[str]:
        return {v.measured for v in page.verdicts(results) if not v.met}

    run = sample()
    before = missed(run["results"])
    run["results"][benchmark][key] = False
    assert missed(run["results"]) - before == {f"{key} = False"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("overhead",), None),
        (("overhead",), [1, 2]),
        (("concurrency",), "failed"),
        (("hf_throughput", "ratio"), [1]),
        (("hf_throughput", "ratio"), "1.2"),
        (("threads", "seconds"), None),
        (("threads", "seconds"), "x"),
    ],
)
def test_ill_typed_results_render_and_miss_instead_of_raising(
    path: tuple[str, ...], value: Any
) -> None:
    run = sample()
    holder = run["results"]
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    text = page.page(run["results"], run["meta"])
    benchmark = path[0]
    assert f"| {benchmark} |" in text
    if benchmark != "threads" or path[-1] != "seconds":
        assert not all(v.met for v in page.verdicts(run["results"]) if v.benchmark == benchmark)
