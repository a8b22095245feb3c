"""The graph under `langgraph dev` (what Studio talks to), driven by the official SDK."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from llm_as_rnn.data import weather
from llm_as_rnn.tasks import get_task
from tests.integration.serving import CACHE, REPO, free_port

pytestmark = pytest.mark.integration


def test_studio_two_timesteps_on_one_thread() -> None:
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
        values = asyncio.run(drive(url))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert values["step"] == 2
    assert values["memory"] != get_task("weather").initial_memory()
    assert values["last_step"]["step"] == 2


async def drive(url: str) -> dict:
    client = get_client(url=url)
    assistants = await client.assistants.search(graph_id="llm_as_rnn")
    assert assistants, "the graph of langgraph.json is served"
    thread = await client.threads.create()
    context = {"model": "fake", "budget": 300}  # a deterministic model, chosen by the context
    for observation in weather.window(0, 2):
        await client.runs.wait(
            thread["thread_id"],
            "llm_as_rnn",
            input={"observations": [observation]},
            context=context,
        )
    state = await client.threads.get_state(thread["thread_id"])
    return dict(state["values"])
