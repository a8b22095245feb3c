"""MIMIC-IV: predict an admission's primary diagnosis from the patient's story.

A loader for the user's own credentialed MIMIC-IV files (nothing is bundled):
``hosp/admissions``, ``hosp/diagnoses_icd``, ``hosp/d_icd_diagnoses``, and
optionally ``hosp/patients`` and ``note/discharge`` (``.csv`` or ``.csv.gz``).

One sequence = one patient; one timestep = one admission, in time order.
Target = the admission's primary diagnosis (``seq_num`` 1): ICD code, title
and chapter. Prediction = a ranked top-5 list. Metrics Acc@1 / Acc@5 on the
code, the 3-character category and the chapter. The input states which ICD
version (9 or 10) the admission is coded in.

No leakage: the input holds only admission facts and the discharge note's
admission-time sections (chief complaint, history of present illness, past
medical, social and family history, allergies). Diagnosis lists, hospital
course, discharge diagnosis/condition/instructions/medications and results
never reach the input (``ALLOWED_SECTIONS``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from llm_as_rnn.errors import DataError
from llm_as_rnn.tasks.base import Score, Task
from llm_as_rnn.tasks.numbers import quoted

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


def icd_category(code: str, version: int) -> str:
    """Return the category of an ICD code: its first 3 characters (4 for ICD-9 E codes)."""
    code = normalize_code(code)
    return code[:4] if version == 9 and code.startswith("E") else code[:3]


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
        "predict its PRIMARY discharge diagnosis as ICD codes, in the ICD version the "
        "admission states (ICD-9 or ICD-10)."
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
        if not isinstance(target, dict) or not isinstance(target.get("code"), str):
            raise DataError(
                f"target {quoted(target)} is not a diagnosis: give "
                '{"code": "I10", "version": 10} (title and chapter optional)'
            )
        given = target.get("version", 10)
        version = 9 if str(given) == "9" else 10 if str(given) == "10" else None
        if version is None or isinstance(given, bool):
            raise DataError(f"target version {quoted(given)} is not an ICD version: give 9 or 10")
        code = normalize_code(target["code"])
        if not code:
            raise DataError(f"target code {quoted(target['code'])} is empty: give an ICD code")
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
