"""The graph under `langgraph dev` (what Studio talks to), driven by the official SDK."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from llm_as_rnn.data import weather
from llm_as_rnn.tasks import get_task
from tests.integration.serving import CACHE, REPO, free_port

pytestmark = pytest.mark.integration


def test_studio_steps_and_a_rewind_on_one_thread() -> None:
    port = free_port()
    CACHE.mkdir(exist_ok=True)
    log = (CACHE / "langgraph-dev.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH", "LANGCHAIN"))}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("langgraph")),
            "dev",
            "--no-browser",
            "--no-reload",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (CACHE / "langgraph-dev.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "langgraph dev did not start"
            time.sleep(0.5)
        found = asyncio.run(drive(url))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    before, fork, after, values = found
    assert [s["values"]["step"] for s in before] == [1, 2, 3]
    old = {s["checkpoint"]["checkpoint_id"] for s in before}
    listed = {s["checkpoint"]["checkpoint_id"] for s in after}
    assert old <= listed  # time travel deletes nothing: the old branch stays listed
    assert fork["checkpoint_id"] in listed
    rewound = next(s for s in after if s["checkpoint"]["checkpoint_id"] == fork["checkpoint_id"])
    assert rewound["parent_checkpoint"]["checkpoint_id"] == before[0]["checkpoint"]["checkpoint_id"]
    assert rewound["values"]["event"]["kind"] == "rewind"
    assert rewound["values"]["step"] == 1
    assert rewound["values"]["memory"] == before[0]["values"]["memory"]
    assert values["step"] == 2  # the next run recomputed step 2 from the fork
    assert values["event"] is None  # the step clears the mark
    assert values["memory"] != get_task("weather").initial_memory()


async def drive(url: str) -> tuple[list[dict], dict, list[dict], dict]:
    """Run 3 steps, fork from the checkpoint after step 1 as ``core.history.rewind`` does
    (``update_state`` at that checkpoint, as the rewrite node, with the rewind event:
    Studio's time travel), then run step 2 again.

    Returns the finished checkpoints before the fork (oldest first), the fork, the
    thread's history after it, and the final values.
    """
    client = get_client(url=url)
    assistants = await client.assistants.search(graph_id="llm_as_rnn")
    assert assistants, "the graph of langgraph.json is served"
    thread = (await client.threads.create())["thread_id"]
    context = {"model": "fake", "budget": 300}  # a deterministic model, chosen by the context
    days = weather.window(0, 3)
    for observation in days:
        await client.runs.wait(
            thread, "llm_as_rnn", input={"observations": [observation]}, context=context
        )
    history = await client.threads.get_history(thread, limit=100)
    before = [s for s in history[::-1] if not s["next"] and s["values"].get("step")]
    head = history[0]["checkpoint"]["checkpoint_id"]
    event = {
        "kind": "rewind",
        "id": uuid.uuid4().hex,
        "after_step": 1,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "from_step": 3,
        "branch": head,
    }
    fork = await client.threads.update_state(  # Studio's "fork": at a past checkpoint
        thread, {"event": event}, as_node="rewrite", checkpoint=before[0]["checkpoint"]
    )
    after = await client.threads.get_history(thread, limit=100)
    await client.runs.wait(thread, "llm_as_rnn", input={"observations": [days[1]]}, context=context)
    state = await client.threads.get_state(thread)
    return before, fork["checkpoint"], after, dict(state["values"])
