"""Print the reliability figures: a table per fault kind, then one JSON line.

Reads the log written by the reliability tests (``RELIABILITY_LOG``, default
``.cache/reliability.jsonl``). Used by ``make reliability``.
"""

from __future__ import annotations

import json
import sys

from tests.reliability.harness import LOG


def main() -> int:
    if not LOG.exists():
        print(f"no reliability log at {LOG}: run the reliability tests first", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    head = ("fault kind", "runs", "survived", "steps lost", "duplicated calls", "kills", "faults")
    table = [head] + [
        (
            r["kind"],
            str(r["runs"]),
            str(r.get("survived", "-")),  # a row written without it
            str(r["steps_lost"]),
            str(r["duplicate_calls"]),
            str(r["kills"]),
            str(r["faults_injected"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    totals = {
        "kills": sum(r["kills"] for r in rows),
        "faults_injected": sum(r["faults_injected"] for r in rows),
        "runs_failed": sum(r["runs_failed"] for r in rows),
        "steps_lost": sum(r["steps_lost"] for r in rows),
        "duplicate_calls": sum(r["duplicate_calls"] for r in rows),
        "checks": len(rows),
    }
    print(json.dumps(totals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
