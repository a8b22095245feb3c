"""MIMIC-IV: predict an admission's primary diagnosis from the patient's story.

A loader for the user's own credentialed MIMIC-IV files (nothing is bundled):
``hosp/admissions``, ``hosp/diagnoses_icd``, ``hosp/d_icd_diagnoses``, and
optionally ``hosp/patients`` and ``note/discharge`` (``.csv`` or ``.csv.gz``).

One sequence = one patient; one timestep = one admission, in time order.
Target = the admission's primary diagnosis (``seq_num`` 1): ICD code, title
and chapter. Prediction = a ranked top-5 list. Metrics Acc@1 / Acc@5 on the
code and on the chapter.

No leakage: the input holds only admission facts and the discharge note's
admission-time sections (chief complaint, history of present illness, past
medical, social and family history, allergies). Diagnosis lists, hospital
course, discharge diagnosis/condition/instructions/medications and results
never reach the input (``ALLOWED_SECTIONS``).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, ClassVar

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.state import Observation
from llm_as_rnn.tasks.base import Score, Task

ALLOWED_SECTIONS = (
    "chief complaint",
    "history of present illness",
    "past medical history",
    "social history",
    "family history",
    "allergies",
)
"""Discharge-note sections written at admission; every other section is dropped."""
NOTE_CHARS = 1500
TOP_K = 5

_ICD10 = [
    ("A00", "B99", "infectious"),
    ("C00", "D49", "neoplasms"),
    ("D50", "D89", "blood"),
    ("E00", "E89", "endocrine"),
    ("F01", "F99", "mental"),
    ("G00", "H95", "nervous_sense"),
    ("I00", "I99", "circulatory"),
    ("J00", "J99", "respiratory"),
    ("K00", "K95", "digestive"),
    ("L00", "L99", "skin"),
    ("M00", "M99", "musculoskeletal"),
    ("N00", "N99", "genitourinary"),
    ("O00", "O9A", "pregnancy"),
    ("P00", "P96", "perinatal"),
    ("Q00", "Q99", "congenital"),
    ("R00", "R99", "symptoms"),
    ("S00", "T88", "injury"),
    ("U00", "U85", "special"),
    ("V00", "Y99", "external"),
    ("Z00", "Z99", "factors"),
]
_ICD9 = [
    (1, 139, "infectious"),
    (140, 239, "neoplasms"),
    (240, 279, "endocrine"),
    (280, 289, "blood"),
    (290, 319, "mental"),
    (320, 389, "nervous_sense"),
    (390, 459, "circulatory"),
    (460, 519, "respiratory"),
    (520, 579, "digestive"),
    (580, 629, "genitourinary"),
    (630, 679, "pregnancy"),
    (680, 709, "skin"),
    (710, 739, "musculoskeletal"),
    (740, 759, "congenital"),
    (760, 779, "perinatal"),
    (780, 799, "symptoms"),
    (800, 999, "injury"),
]


def normalize_code(code: str) -> str:
    """Return an ICD code without dots or spaces, upper-case."""
    return re.sub(r"[\s.]", "", code).upper()


def icd_chapter(code: str, version: int) -> str | None:
    """Return a version-independent chapter name of an ICD-9 or ICD-10 code."""
    code = normalize_code(code)
    if not code:
        return None
    if version == 9:
        if code[0] == "V":
            return "factors"
        if code[0] == "E":
            return "external"
        if not code[:3].isdigit():
            return None
        number = int(code[:3])
        return next((name for lo, hi, name in _ICD9 if lo <= number <= hi), None)
    head = code[:3]
    return next((name for lo, hi, name in _ICD10 if lo <= head <= hi), None)


_CODE = re.compile(
    r"\b([A-TV-Z]\d{2}(?:\.?[0-9A-Z]{1,4})?|V\d{2}(?:\.?\d{1,2})?|E\d{3}(?:\.?\d)?|\d{3}(?:\.?\d{1,2})?)\b"
)


class MimicTask(Task):
    """Primary diagnosis of the next admission (Acc@1 / Acc@5)."""

    name = "mimic"
    kind: ClassVar[Any] = "classification"
    sections = ("HISTORY", "CURRENT STATUS AND FOCUS AREAS", "CONSIDERATIONS FOR THE FUTURE")
    description = (
        "You follow one hospital patient across admissions. Each step is a new admission; "
        "predict its PRIMARY discharge diagnosis as ICD codes."
    )

    def __init__(self, titles: dict[str, str] | None = None) -> None:
        self.titles = titles or {}
        """Lower-cased diagnosis title -> code, to read answers given as titles."""

    @property
    def answer_format(self) -> str:
        """Ask for a ranked list of five codes."""
        return "Answer: <ICD code 1>, <ICD code 2>, <ICD code 3>, <ICD code 4>, <ICD code 5>"

    @property
    def question(self) -> str:
        """Ask for the five most likely primary diagnoses."""
        return (
            "What are the five most likely primary diagnoses of this admission, most likely first?"
        )

    def initial_memory(self) -> str:
        """Return h_0 in the reproduction's three sections."""
        return (
            "## HISTORY\n- No admissions seen yet.\n\n## CURRENT STATUS AND FOCUS AREAS\n"
            "- Unknown.\n\n## CONSIDERATIONS FOR THE FUTURE\n- None yet."
        )

    def render_target(self, target: Any) -> str:
        """Show a diagnosis as ``code (title)``."""
        if isinstance(target, dict):
            return f"{target.get('code')} ({target.get('title', '')})"
        if isinstance(target, list):
            return ", ".join(target)
        return str(target)

    def parse(self, text: str) -> list[str] | None:
        """Read up to five codes (or known titles) in order; None if there are none."""
        after = re.split(r"answer\s*:", text, flags=re.I)
        body = after[-1] if len(after) > 1 else text
        lines = [line for line in body.splitlines() if line.strip()]
        items = lines if len(lines) > 1 else re.split(r"[,;]", body)
        found: list[str] = []
        for line in items:
            code = _CODE.search(line.upper())
            if code:
                candidate = normalize_code(code.group(1))
            else:
                candidate = self.titles.get(re.sub(r"^[\s\d.)*-]+", "", line).strip().lower(), "")
            if candidate and candidate not in found:
                found.append(candidate)
            if len(found) == TOP_K:
                break
        return found or None

    def validate_target(self, target: Any) -> dict[str, Any]:
        """Accept ``{"code", "version", "title", "chapter"}`` (chapter derived if missing)."""
        if not isinstance(target, dict) or "code" not in target:
            raise ValueError(f"target {target!r} is not a diagnosis with a code")
        version = int(target.get("version", 10))
        code = normalize_code(str(target["code"]))
        return {
            "code": code,
            "version": version,
            "title": str(target.get("title", "")),
            "chapter": target.get("chapter") or icd_chapter(code, version),
        }

    def score(self, answer: Any, target: Any) -> Score:
        """Acc@1 on the code."""
        if target is None:
            return Score(None, None)
        truth = self.validate_target(target)
        correct = bool(answer) and answer[0] == truth["code"]
        return Score(correct, 0.0 if correct else 1.0)

    def step_metrics(self, answer: Any, target: Any) -> dict[str, float]:
        """Acc@1 and Acc@5 on the code and on the chapter."""
        truth = self.validate_target(target)
        codes = list(answer or [])[:TOP_K]
        chapters = [icd_chapter(c, truth["version"]) for c in codes]
        return {
            "acc1_code": float(codes[:1] == [truth["code"]]),
            "acc5_code": float(truth["code"] in codes),
            "acc1_chapter": float(chapters[:1] == [truth["chapter"]]),
            "acc5_chapter": float(truth["chapter"] in chapters),
        }


def _read(directory: Path, name: str, required: bool = True) -> Any:
    import pandas as pd

    for suffix in (".csv.gz", ".csv"):
        path = directory / f"{name}{suffix}"
        if path.exists():
            return pd.read_csv(path, low_memory=False)
    if required:
        raise ConfigError(f"MIMIC-IV file {directory / name}.csv(.gz) not found: check --mimic-dir")
    return None


def note_sections(text: str) -> dict[str, str]:
    """Split a discharge note into ``{lower-case heading: body}``."""
    sections: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^\s*([A-Za-z][A-Za-z /&-]{2,60}):\s*(.*)$", line)
        if heading:
            current = heading.group(1).strip().lower()
            sections[current] = heading.group(2).strip()
        elif current is not None:
            sections[current] = (sections[current] + "\n" + line).strip()
    return sections


def admission_text(row: dict[str, Any], note: str | None, previous: Any) -> str:
    """Render one admission from allowed fields and allowed note sections only."""
    lines = [
        f"admission type: {row.get('admission_type')}",
        f"admitted from: {row.get('admission_location')}",
        f"insurance: {row.get('insurance')}",
    ]
    if row.get("gender") is not None:
        lines.append(f"gender: {row['gender']}, age: {row.get('age')}")
    if previous is not None:
        lines.append(f"days since previous discharge: {previous}")
    if note:
        kept = note_sections(note)
        for section in ALLOWED_SECTIONS:
            if kept.get(section):
                lines.append(f"{section}: {kept[section]}")
    return "\n".join(lines)[: NOTE_CHARS + 400]


def load_mimic(
    directory: str | Path, sequences: int, steps: int, seed: int = 0
) -> tuple[MimicTask, list[tuple[str, list[Observation]]]]:
    """Load ``sequences`` patients with at least ``steps`` admissions each.

    Patients are drawn with a seeded shuffle among those eligible, so the
    same arguments give the same sequences. Returns the task (which knows the
    diagnosis titles) and ``(subject_id, observations)`` pairs.
    """
    root = Path(directory)
    hosp = root / "hosp"
    if not hosp.is_dir():
        raise ConfigError(f"{root} has no hosp/ folder: point --mimic-dir at a MIMIC-IV directory")
    admissions = _read(hosp, "admissions")
    diagnoses = _read(hosp, "diagnoses_icd")
    dictionary = _read(hosp, "d_icd_diagnoses")
    patients = _read(hosp, "patients", required=False)
    notes = _read(root / "note", "discharge", required=False)
    titles = {
        (normalize_code(str(r.icd_code)), int(r.icd_version)): str(r.long_title)
        for r in dictionary.itertuples()
    }
    primary = diagnoses[diagnoses["seq_num"] == 1].set_index("hadm_id")
    note_by_adm = {} if notes is None else dict(zip(notes["hadm_id"], notes["text"], strict=False))
    demo = {} if patients is None else {r.subject_id: r for r in patients.itertuples()}
    admissions = admissions[admissions["hadm_id"].isin(primary.index)].copy()
    admissions["admittime"] = admissions["admittime"].astype("datetime64[ns]")
    admissions["dischtime"] = admissions["dischtime"].astype("datetime64[ns]")
    counts = admissions.groupby("subject_id").size()
    eligible = sorted(int(s) for s in counts[counts >= steps].index)
    if len(eligible) < sequences:
        raise ConfigError(
            f"only {len(eligible)} patients have >= {steps} admissions with a primary "
            f"diagnosis: lower --sequences or --steps"
        )
    random.Random(seed).shuffle(eligible)
    out = []
    for subject in sorted(eligible[:sequences]):
        rows = admissions[admissions["subject_id"] == subject].sort_values("admittime").head(steps)
        observations = []
        last_discharge = None
        for row in rows.to_dict("records"):
            dx = primary.loc[row["hadm_id"]]
            code, version = normalize_code(str(dx["icd_code"])), int(dx["icd_version"])
            person = demo.get(subject)
            if person is not None:
                row["gender"] = person.gender
                row["age"] = int(person.anchor_age + (row["admittime"].year - person.anchor_year))
            gap: int | None = None
            if last_discharge is not None:
                gap = (row["admittime"] - last_discharge).days
            observations.append(
                Observation(
                    input=admission_text(row, note_by_adm.get(row["hadm_id"]), gap),
                    target={
                        "code": code,
                        "version": version,
                        "title": titles.get((code, version), ""),
                        "chapter": icd_chapter(code, version),
                    },
                    id=str(row["hadm_id"]),
                )
            )
            last_discharge = row["dischtime"]
        out.append((str(subject), observations))
    task = MimicTask({title.lower(): code for (code, _), title in titles.items()})
    return task, out
