"""The MIMIC-IV loader on a synthetic fixture in the real schema, and leakage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_as_rnn.data.mimic import load_mimic
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.evals.records import step_metrics
from llm_as_rnn.tasks.mimic import icd_category, icd_chapter, normalize_code
from tests.unit.mimic_fixture import SECRET_COURSE, SECRET_DISCHARGE_DX, TITLES, write_fixture


@pytest.fixture
def mimic_dir(tmp_path: Path) -> Path:
    return write_fixture(tmp_path / "mimic")


def test_loads_patients_in_time_order(mimic_dir: Path) -> None:
    _task, seqs = load_mimic(mimic_dir, sequences=2, steps=2, seed=0)
    assert [sid for sid, _ in seqs] == ["1", "2"]  # only patients with >= 2 admissions
    patient1 = dict(seqs)["1"]
    assert [o["id"] for o in patient1] == ["101", "102"]
    assert patient1[0]["target"] == {
        "code": "I5023",
        "version": 10,
        "title": "Acute on chronic systolic (congestive) heart failure",
        "chapter": "circulatory",
    }
    assert patient1[1]["target"]["chapter"] == "respiratory"
    assert "days since previous discharge: 54" in patient1[1]["input"]
    assert "gender: F, age: 70" in patient1[0]["input"]
    assert "coded in: ICD-10" in patient1[0]["input"]  # the model is told the version
    assert "coded in: ICD-9" in dict(seqs)["2"][0]["input"]
    assert dict(seqs)["2"][0]["target"]["chapter"] == "circulatory"  # ICD-9 4280


def test_no_leakage(mimic_dir: Path) -> None:
    _, seqs = load_mimic(mimic_dir, sequences=2, steps=3 - 1, seed=0)
    every_input = json.dumps([o["input"] for _, obs in seqs for o in obs])
    assert "shortness of breath" in every_input  # allowed sections do arrive
    assert "History of Present Illness" not in every_input or "dyspnea" in every_input
    for forbidden in (SECRET_COURSE, SECRET_DISCHARGE_DX, "Discharge Condition", "seq_num"):
        assert forbidden not in every_input
    for code, _, title in TITLES:
        assert title not in every_input
        assert code not in every_input


def test_too_few_patients(mimic_dir: Path) -> None:
    message = r"1 patient with >= 3 admissions .*fewer than --sequences 2: lower --sequences"
    with pytest.raises(ConfigError, match=message):
        load_mimic(mimic_dir, sequences=2, steps=3)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no hosp/ folder"):
        load_mimic(tmp_path, 1, 1)


def test_parse_and_metrics(mimic_dir: Path) -> None:
    task, seqs = load_mimic(mimic_dir, sequences=1, steps=2, seed=0)
    answer = task.parse(
        "Answer: 1. I50.23 heart failure\n2. Pneumonia, unspecified organism\n3. N17.9"
    )
    assert answer == ["I5023", "J189", "N179"]
    target = dict(seqs)["1"][1]["target"]  # J189, respiratory
    metrics = step_metrics(task, answer, target)
    assert metrics == {
        "acc1_code": 0.0,
        "acc5_code": 1.0,
        "acc1_category": 0.0,
        "acc5_category": 1.0,
        "acc1_chapter": 0.0,
        "acc5_chapter": 1.0,
    }
    # Categories: the first 3 characters, so J18.0 counts for J18.9 at category level
    near = step_metrics(task, ["J180", "I5023"], target)
    assert (near["acc1_code"], near["acc1_category"], near["acc5_category"]) == (0.0, 1.0, 1.0)
    assert icd_category("E8859", 9) == "E885"
    assert icd_category("4280", 9) == "428"
    assert task.score(["J189"], target).correct is True
    assert task.parse("no idea") is None


@pytest.mark.parametrize(
    ("code", "version", "chapter"),
    [
        ("I50.23", 10, "circulatory"),
        ("J189", 10, "respiratory"),
        ("E119", 10, "endocrine"),
        ("4280", 9, "circulatory"),
        ("V5861", 9, "factors"),
        ("E8497", 9, "external"),
        ("Z7901", 10, "factors"),
        ("S72001A", 10, "injury"),
        ("C349", 10, "neoplasms"),
    ],
)
def test_icd_chapters(code: str, version: int, chapter: str) -> None:
    assert icd_chapter(code, version) == chapter
    assert normalize_code(" i50.23 ") == "I5023"
