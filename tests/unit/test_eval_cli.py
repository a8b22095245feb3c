"""The eval command: user files, one-line errors, resume after SIGKILL, report = summary."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llm_as_rnn.evals.columns import COLUMNS
from llm_as_rnn.evals.config import REFERENCES
from tests.conftest import kill_when

CLI = [sys.executable, "-m", "llm_as_rnn", "eval"]


def run_eval(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD_CSV = "sequence_id,step,input,target\n" + "".join(
    f"s{s},{t},reading {s * 10 + t},{'up' if (s + t) % 2 else 'down'}\n"
    for s in (1, 2)
    for t in (1, 2, 3)
)


@pytest.mark.parametrize(
    ("name", "content", "task_type", "message"),
    [
        (
            "a.csv",
            "sequence_id,step,input\ns1,1,x\n",
            "classification",
            "row 1 (header): missing column 'target'",
        ),
        (
            "b.csv",
            "sequence_id,step,input,target\ns1,1,x,0.5\ns1,2,y,abc\n",
            "regression",
            "row 3: target 'abc' is not a number",
        ),
        ("c.csv", "sequence_id,step,input,target\n", "classification", "row 2: no data rows"),
        (
            "d.jsonl",
            '{"sequence_id": "s", "step": 1, "input": "", "target": "a"}\n',
            "classification",
            "row 1: empty input",
        ),
        (
            "e.jsonl",
            '{"sequence_id": "s", "step": 1, "input": "x"}\n',
            "classification",
            "row 1: missing column 'target'",
        ),
        (
            "f.csv",
            "sequence_id,step,input,target\ns1,one,x,a\n",
            "classification",
            'row 2: step "one" is not an integer',
        ),
    ],
)
def test_broken_user_file_is_one_line_exit_2(
    tmp_path: Path, name: str, content: str, task_type: str, message: str
) -> None:
    data = write(tmp_path / name, content)
    out = run_eval(
        "--data",
        str(data),
        "--task-type",
        task_type,
        "--model",
        "fake",
        "--sequences",
        "1",
        "--steps",
        "2",
        "--out",
        str(tmp_path / "out"),
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {data} row")
    assert message in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("held", "asked", "message"),
    [
        (1, None, "holds 1 sequence, fewer than --sequences 2: pass --sequences 1 or fewer"),
        (3, "5", "holds 3 sequences, fewer than --sequences 5: pass --sequences 3 or fewer"),
    ],
)
def test_a_file_with_fewer_sequences_names_the_flag_and_the_count(
    tmp_path: Path, held: int, asked: str | None, message: str
) -> None:
    rows = "".join(f"s{s},1,reading,up\n" for s in range(held))
    data = write(tmp_path / "few.csv", "sequence_id,step,input,target\n" + rows)
    flags = ["--sequences", asked] if asked else []  # None: the default, 2
    out = run_eval("--data", str(data), "--task-type", "classification", "--model", "fake",
                   *flags, "--out", str(tmp_path / "o"))  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"error: {data} {message}\n"


def test_user_file_eval_runs(tmp_path: Path) -> None:
    data = write(tmp_path / "seq.csv", GOOD_CSV)
    out = run_eval(
        "--data",
        str(data),
        "--task-type",
        "classification",
        "--model",
        "fake",
        "--sequences",
        "2",
        "--steps",
        "3",
        "--methods",
        "zero-shot,rnn",
        "--out",
        str(tmp_path / "out"),
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["results"]["seq"]) == {"persistence", "prior", "zero-shot", "rnn"}
    assert summary["results"]["seq"]["rnn"]["steps"] == 6


ARGS = ["--tasks", "weather,sp500", "--sequences", "2", "--steps", "6", "--concurrency", "3"]


def stored_steps(db: Path) -> int:
    """Count finished baseline steps plus trace records in an eval database."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM store").fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0


TOTAL = 2 * 5 * 2 * 6  # tasks x methods x sequences x steps


def test_killed_eval_resumes_to_the_same_summary(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    done = run_eval(*ARGS, "--model", "fake:0", "--out", str(straight))
    assert done.returncode == 0, done.stderr
    resumed = tmp_path / "resumed"
    slow = [*CLI, *ARGS, "--model", "fake:0:15", "--out", str(resumed)]
    seen = []
    for threshold in (10, 45, 90):  # kill once that many steps are committed
        kill_when(slow, lambda n=threshold: stored_steps(resumed / "state.db") >= n, 60)
        seen.append(stored_steps(resumed / "state.db"))
    assert seen[0] < seen[1] < seen[2] < TOTAL  # progress kept across kills, never complete
    assert not (resumed / "summary.json").exists()
    final = run_eval(*ARGS, "--model", "fake:0:15", "--out", str(resumed))
    assert final.returncode == 0, final.stderr
    a = json.loads((straight / "summary.json").read_text())
    b = json.loads((resumed / "summary.json").read_text())
    a["config"].pop("model"), b["config"].pop("model")  # the latency knob only
    assert a == b
    steps = [json.loads(line) for line in (resumed / "steps.jsonl").read_text().splitlines()]
    keys = [(r["task"], r["method"], r["sequence"], r["step"]) for r in steps]
    assert len(keys) == len(set(keys))
    assert len([k for k in keys if k[1] not in REFERENCES]) == TOTAL


def test_other_settings_in_the_same_out_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert (
        run_eval(
            "--tasks",
            "weather",
            "--model",
            "fake",
            "--sequences",
            "1",
            "--steps",
            "2",
            "--out",
            str(out),
        ).returncode
        == 0
    )
    again = run_eval(
        "--tasks",
        "weather",
        "--model",
        "fake",
        "--sequences",
        "1",
        "--steps",
        "3",
        "--out",
        str(out),
    )
    assert again.returncode == 2
    assert "holds an evaluation with other settings (steps: 2 -> 3)" in again.stderr


def test_report_numbers_equal_summary(tmp_path: Path) -> None:
    out = tmp_path / "r"
    done = run_eval(*ARGS, "--model", "fake", "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())["results"]
    report = (out / "report.md").read_text()
    metric_of = {c.header: c.metric for c in COLUMNS}
    rows = 0
    for task, methods in summary.items():
        section = report.split(f"### {task}\n")[1].split("##")[0]
        table = [line for line in section.splitlines() if line.startswith("|")]
        header = [c.strip() for c in table[0].strip("|").split("|")]
        assert header[1] == {"weather": "accuracy", "sp500": "MAE"}[task]
        assert "Intervals over 2 sequences are wide" in section
        for line in table[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            method = cells[0]
            stats = methods[method]
            rows += 1
            for name, cell in zip(header[1:], cells[1:], strict=True):
                if metric_of.get(name) in stats["metrics"]:
                    mean = stats["metrics"][metric_of[name]]["mean"]
                    assert float(re.split(r" ± ", cell)[0]) == pytest.approx(mean, abs=6e-4)
            assert float(cells[header.index("calls/step")]) == pytest.approx(
                stats["cost_per_step"]["calls"], abs=5e-3
            )
            # the terminal table at the end of eval shows the same headline cell, with n
            shown = [t.split() for t in done.stderr.splitlines() if t.startswith(f"  {method} ")]
            assert [cells[0], *cells[1].split(), "2"] in shown
    assert rows == 15  # 5 model methods per task, 2 reference rows (weather), 3 (sp500)
    assert "weather: accuracy, mean ± 95% interval over n sequences" in done.stderr
    assert "sp500: MAE, mean ± 95% interval over n sequences" in done.stderr
    assert len(list(out.glob("*.png"))) >= 2


def test_any_label_set_is_scored(tmp_path: Path) -> None:
    labels = ["heavy rain", "no-rain", "☀️ sunny", "2"]
    rows = "".join(
        f"seq.{s},{t},reading {s}-{t},{labels[(s + t) % 4]}\n" for s in (1, 2) for t in (1, 2, 3)
    )
    data = write(tmp_path / "my.data.csv", "sequence_id,step,input,target\n" + rows)
    out_dir = tmp_path / "out"
    args = ["--data", str(data), "--task-type", "classification", "--model", "fake"]
    out = run_eval(*args, "--methods", "zero-shot,rnn", "--steps", "3", "--out", str(out_dir))
    assert out.returncode == 0, out.stderr
    every = [json.loads(line) for line in (out_dir / "steps.jsonl").read_text().splitlines()]
    steps = [s for s in every if s["method"] not in REFERENCES]
    assert len(steps) == 12
    assert all(s["valid"] for s in steps), [s["prediction_text"] for s in steps]
    assert {s["target"] for s in steps} == {"heavy rain", "no-rain", "☀ sunny", "2"}
    assert all(s["prediction"] in {"heavy rain", "no-rain", "☀ sunny", "2"} for s in steps)
    assert "warning:" not in out.stderr


def test_an_out_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    out_file = write(tmp_path / "taken", "x")
    out = run_eval("--model", "fake", "--steps", "2", "--sequences", "1", "--out", str(out_file))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"error: --out {out_file} is a file: give a folder"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sequence_id,step,input,target\ndesk,1,Password reset, link expired,resolve\n",
         'row 2: has 5 fields, the header has 4: quote a field that holds a comma'),
        ("sequence_id,step,input,target\ndesk,1,x\n",
         "row 2: has 3 fields, the header has 4: give every column a value"),
    ],
)  # fmt: skip
def test_a_row_of_another_width_is_refused_not_shifted(
    tmp_path: Path, content: str, message: str
) -> None:
    data = write(tmp_path / "t.csv", content)
    out = run_eval("--data", str(data), "--task-type", "classification", "--model", "fake",
                   "--sequences", "1", "--out", str(tmp_path / "o"))  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert out.stderr.count("\n") == 1


def test_a_refused_resume_loads_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llm_as_rnn.evals import runner
    from llm_as_rnn.frontends.cli import main

    out = tmp_path / "o"
    common = ["eval", "--tasks", "weather", "--model", "fake", "--sequences", "1"]
    assert main([*common, "--steps", "2", "--out", str(out)]) == 0

    async def no_load(*args: object) -> None:
        raise AssertionError("a model was loaded before the identity check")

    monkeypatch.setattr(runner, "load_backend", no_load)
    capsys.readouterr()
    assert main([*common, "--steps", "3", "--out", str(out)]) == 2
    assert "other settings (steps: 2 -> 3)" in capsys.readouterr().err
    fresh = tmp_path / "fresh"  # a new folder is only recorded once the model has loaded
    assert main([*common, "--steps", "3", "--out", str(fresh)]) == 1
    assert not (fresh / "config.json").exists()


def test_choice_answers_need_a_task_with_labels(tmp_path: Path) -> None:
    common = ["--model", "fake", "--sequences", "1", "--steps", "2", "--answer-mode", "choice"]
    alone = run_eval("--tasks", "sp500", *common, "--out", str(tmp_path / "a"))
    assert alone.returncode == 2, alone.stderr
    assert alone.stderr.strip().splitlines() == [
        "error: --answer-mode choice scores a fixed label set, and sp500 has none: "
        "use --answer-mode free"
    ]
    assert not (tmp_path / "a").exists()
    mixed = run_eval(
        "--tasks", "sp500,weather", "--methods", "rnn", *common, "--out", str(tmp_path / "b")
    )
    assert mixed.returncode == 0, mixed.stderr
    assert "warning: sp500 has no label set: its answers are free text" in mixed.stderr


@pytest.mark.parametrize(
    ("steps", "ran", "warned"), [("10", "2-3 steps", True), ("2", "2 steps", False)]
)
def test_the_report_says_the_steps_that_ran(
    tmp_path: Path, steps: str, ran: str, warned: bool
) -> None:
    short = GOOD_CSV + "s3,1,reading 31,up\ns3,2,reading 32,down\n"  # sequences of 3, 3, 2 steps
    data = write(tmp_path / "seq.csv", short)
    flags = ["--data", str(data), "--task-type", "classification", "--model", "fake"]
    out = run_eval(*flags, "--sequences", "3", "--steps", steps, "--methods", "zero-shot",
                   "--out", str(tmp_path / "out"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"seq: 3 sequences x {ran};" in report
    assert "x 10 steps" not in report
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: --steps")]
    assert warnings == warned * [
        "warning: --steps 10 is more than seq's sequences hold (up to 3 steps): "
        "the report is over the steps they have"
    ]
