"""A synthetic MIMIC-IV directory in the real file schema (no real patient data)."""

from __future__ import annotations

import gzip
from pathlib import Path

SECRET_COURSE = "SECRET-COURSE-TEXT"
SECRET_DISCHARGE_DX = "SECRET-DISCHARGE-DIAGNOSIS"

ADMISSIONS = [
    # subject, hadm, admit, discharge, type, location, insurance
    (
        1,
        101,
        "2150-01-01 10:00:00",
        "2150-01-05 12:00:00",
        "EW EMER.",
        "EMERGENCY ROOM",
        "Medicare",
    ),
    (
        1,
        102,
        "2150-03-01 09:00:00",
        "2150-03-04 12:00:00",
        "URGENT",
        "TRANSFER FROM HOSPITAL",
        "Medicare",
    ),
    (
        1,
        103,
        "2150-06-01 08:00:00",
        "2150-06-09 12:00:00",
        "EW EMER.",
        "EMERGENCY ROOM",
        "Medicare",
    ),
    (
        2,
        201,
        "2160-02-01 10:00:00",
        "2160-02-03 12:00:00",
        "ELECTIVE",
        "PHYSICIAN REFERRAL",
        "Private",
    ),
    (2, 202, "2160-05-01 10:00:00", "2160-05-02 12:00:00", "EW EMER.", "EMERGENCY ROOM", "Private"),
    (
        3,
        301,
        "2170-01-01 10:00:00",
        "2170-01-02 12:00:00",
        "EW EMER.",
        "EMERGENCY ROOM",
        "Medicaid",
    ),
]
DIAGNOSES = [
    # subject, hadm, seq, code, version
    (1, 101, 1, "I5023", 10),
    (1, 101, 2, "N179", 10),
    (1, 102, 1, "J189", 10),
    (1, 102, 2, "I5023", 10),
    (1, 103, 1, "I5023", 10),
    (2, 201, 1, "4280", 9),
    (2, 201, 2, "5849", 9),
    (2, 202, 1, "486", 9),
    (3, 301, 1, "E119", 10),
]
TITLES = [
    ("I5023", 10, "Acute on chronic systolic (congestive) heart failure"),
    ("N179", 10, "Acute kidney failure, unspecified"),
    ("J189", 10, "Pneumonia, unspecified organism"),
    ("E119", 10, "Type 2 diabetes mellitus without complications"),
    ("4280", 9, "Congestive heart failure, unspecified"),
    ("5849", 9, "Acute kidney failure, unspecified"),
    ("486", 9, "Pneumonia, organism unspecified"),
]


def note(hadm: int) -> str:
    return (
        f"Name: ___ Unit No: ___\n"
        f"Chief Complaint: shortness of breath ({hadm})\n"
        "History of Present Illness: patient with worsening dyspnea and leg swelling.\n"
        "Past Medical History: hypertension.\n"
        f"Brief Hospital Course: {SECRET_COURSE} treated for the diagnosis.\n"
        f"Discharge Diagnosis: {SECRET_DISCHARGE_DX}\n"
        "Discharge Condition: stable.\n"
    )


def write_fixture(root: Path) -> Path:
    hosp, notes = root / "hosp", root / "note"
    hosp.mkdir(parents=True)
    notes.mkdir()
    lines = [
        "subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,admission_location,"
        "discharge_location,insurance,language,marital_status,race,hospital_expire_flag"
    ]
    for s, h, a, d, t, loc, ins in ADMISSIONS:
        lines.append(f"{s},{h},{a},{d},,{t},{loc},HOME,{ins},ENGLISH,SINGLE,WHITE,0")
    with gzip.open(hosp / "admissions.csv.gz", "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    (hosp / "diagnoses_icd.csv").write_text(
        "subject_id,hadm_id,seq_num,icd_code,icd_version\n"
        + "\n".join(f"{s},{h},{q},{c},{v}" for s, h, q, c, v in DIAGNOSES)
        + "\n"
    )
    (hosp / "d_icd_diagnoses.csv").write_text(
        "icd_code,icd_version,long_title\n"
        + "\n".join(f'{c},{v},"{t}"' for c, v, t in TITLES)
        + "\n"
    )
    (hosp / "patients.csv").write_text(
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"
        "1,F,70,2150,2011 - 2013,\n2,M,60,2160,2011 - 2013,\n3,M,50,2170,2011 - 2013,\n"
    )
    import csv

    with (notes / "discharge.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "note_id",
                "subject_id",
                "hadm_id",
                "note_type",
                "note_seq",
                "charttime",
                "storetime",
                "text",
            ]
        )
        for s, h, *_ in ADMISSIONS:
            writer.writerow([f"{s}-DS-{h}", s, h, "DS", 1, "", "", note(h)])
    return root
