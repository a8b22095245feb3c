"""Measure the peak memory of choice mode with many labels on a local model.

Writes a one-sequence classification file with ``--labels`` distinct labels
(every label listed in the predictor's prompt, as choice mode does), runs one
zero-shot step in choice mode under ``/usr/bin/time -v`` and prints one JSON
object with the peak resident set size. The README's "Local models: batched
generation" quotes it.

Run: ``.venv/bin/python scripts/choice_memory.py --labels 300`` (``--src DIR``
measures another checkout's ``src``, e.g. the code before a change).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = ["heavy rain", "snow", "clear", "fog", "drizzle", "hail", "sleet", "storm", "wind"]


def labels(count: int) -> list[str]:
    """Return ``count`` distinct labels of one to several tokens."""
    return [f"{WORDS[i % len(WORDS)]} {i}" for i in range(count)]


def write_data(path: Path, names: list[str]) -> None:
    """Write two steps of one sequence whose targets are labels of the set."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["sequence_id", "step", "input", "target"])
        writer.writerow(["s1", 1, "pressure falling, wind 6 m/s", names[0]])
        writer.writerow(["s1", 2, "pressure rising, wind 2 m/s", names[-1]])


def peak_rss_mb(report: str) -> float:
    """Return the peak resident set size in MB from ``/usr/bin/time -v`` output."""
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    if found is None:
        raise SystemExit(f"error: no peak memory in /usr/bin/time output:\n{report}")
    return round(int(found.group(1)) / 1024, 1)


def main() -> None:
    """Run the measurement and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--labels", type=int, default=300, help="how many labels (300)")
    parser.add_argument(
        "--src",
        default=str(Path(__file__).resolve().parents[1] / "src"),
        help="the package source to measure (this checkout's)",
    )
    args = parser.parse_args()
    names = labels(args.labels)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / f"L{args.labels}.csv"
        write_data(data, names)
        command = [
            "/usr/bin/time", "-v", sys.executable, "-m", "llm_as_rnn", "eval",
            "--data", str(data), "--task-type", "classification", "--labels", ",".join(names),
            "--answer-mode", "choice", "--model", "embedded", "--steps", "1",
            "--sequences", "1", "--methods", "zero-shot", "--max-new-tokens", "8",
            "--out", str(Path(tmp) / "out"),
        ]  # fmt: skip
        env = os.environ | {"PYTHONPATH": args.src}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"error: the eval failed (exit {done.returncode}):\n{done.stderr}")
        lines = (Path(tmp) / "out" / "steps.jsonl").read_text().splitlines()
    (step,) = [r for r in map(json.loads, lines) if r["method"] == "zero-shot"]
    print(json.dumps({
        "labels": args.labels,
        "labels_scored": len(step["distribution"]),
        "prompt_tokens": step["prompt_tokens"],
        "peak_rss_mb": peak_rss_mb(done.stderr),
        "src": args.src,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
