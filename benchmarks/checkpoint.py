"""Database growth per step: the checkpoints do not grow with t.

A 220-step weather sequence (deterministic fake model, budget 512) on the
SQLite checkpointer and store; after each step the WAL is folded into the
file and the used bytes (page_count x page_size minus free pages) read.
early = bytes per step over t = 10..30, late = over t = 190..210;
growth = late / early. Target: growth <= 1.5. Three repetitions (one in a
quick run).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import common

from llm_as_rnn import Context, build_graph, open_storage, run_sequence
from llm_as_rnn.data import weather
from llm_as_rnn.testing import fake_model

STEPS = 220


def used_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (
            conn.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_count", "freelist_count", "page_size")
        )
    return int((pages - free) * size)


async def once() -> dict[str, Any]:
    observations = weather.window(0, STEPS)
    sizes: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "growth.db"
        async with open_storage(str(path)) as (saver, store):
            graph = build_graph(saver, store)
            ctx = Context(model=fake_model(0), budget=512)
            for t in (10, 30, 190, 210):
                await run_sequence(graph, observations, thread_id="g", context=ctx, steps=t)
                sizes[t] = used_bytes(path)
    early = (sizes[30] - sizes[10]) / 20
    late = (sizes[210] - sizes[190]) / 20
    return {
        "bytes_per_step_early": round(early),
        "bytes_per_step_late": round(late),
        "growth": round(late / early, 4),
        "db_bytes_at_210": sizes[210],
    }


def main() -> None:
    runs = common.repeat(lambda: asyncio.run(once()), common.sized(3, 1))
    common.emit(
        {
            "benchmark": "checkpoint",
            "steps": STEPS,
            "bytes_per_step_early": common.median_of(runs, "bytes_per_step_early"),
            "bytes_per_step_late": common.median_of(runs, "bytes_per_step_late"),
            "growth": common.median_of(runs, "growth"),
            "db_bytes_at_210": common.median_of(runs, "db_bytes_at_210"),
            "target": "growth <= 1.5",
            "repetitions": len(runs),
        }
    )


if __name__ == "__main__":
    main()
