"""MIMIC-IV sequences from the user's own credentialed files (nothing is bundled).

Reads ``hosp/admissions``, ``hosp/diagnoses_icd``, ``hosp/d_icd_diagnoses``,
and optionally ``hosp/patients`` and ``note/discharge`` (``.csv`` or
``.csv.gz``). One sequence = one patient, one timestep = one admission in time
order; only admission-time facts reach the input (see ``llm_as_rnn.tasks.mimic``).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from llm_as_rnn.core.state import Observation
from llm_as_rnn.errors import ConfigError, counted, require
from llm_as_rnn.tasks.mimic import (
    ALLOWED_SECTIONS,
    NOTE_CHARS,
    MimicTask,
    icd_chapter,
    normalize_code,
)


def read_table(directory: Path, name: str, required: bool = True) -> Any:
    """Read ``name.csv.gz`` or ``name.csv`` of a MIMIC-IV folder (None if optional and absent)."""
    pd = require("pandas", "evals")
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


def admission_text(
    row: dict[str, Any], note: str | None, previous: Any, version: int | None = None
) -> str:
    """Render one admission from allowed fields and allowed note sections only.

    ``version`` (9 or 10) tells the model which ICD revision this admission is
    coded in (MIMIC-IV switched from ICD-9 to ICD-10 in late 2015).
    """
    lines = [
        f"admission type: {row.get('admission_type')}",
        f"admitted from: {row.get('admission_location')}",
        f"insurance: {row.get('insurance')}",
    ]
    if version is not None:
        lines.append(f"diagnoses of this admission are coded in: ICD-{version}")
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
    admissions = read_table(hosp, "admissions")
    diagnoses = read_table(hosp, "diagnoses_icd")
    dictionary = read_table(hosp, "d_icd_diagnoses")
    patients = read_table(hosp, "patients", required=False)
    notes = read_table(root / "note", "discharge", required=False)
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
            f"{counted(len(eligible), 'patient')} with >= {counted(steps, 'admission')} "
            f"(each with a primary diagnosis), fewer than --sequences {sequences}: "
            "lower --sequences or --steps"
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
                    input=admission_text(row, note_by_adm.get(row["hadm_id"]), gap, version),
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
