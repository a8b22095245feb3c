"""A task of your own: triage helpdesk tickets as ``escalate`` or ``resolve``.

A task says what is predicted (``description``, ``labels`` or a number) and
how each step is asked; parsing and scoring come from ``ClassificationTask``
(one label) or ``RegressionTask`` (one number). Pass the task object in the
``Context``; the memory learns which tickets need escalating.

    python examples/custom_task.py                    # deterministic fake model, instant
    python examples/custom_task.py --model embedded   # the bundled SmolLM2 (slow, weak)

To reach it by name (``llm-as-rnn run --task helpdesk``, Studio's context,
``langgraph.json``), register the class in your package's ``pyproject.toml``:

    [project.entry-points."llm_as_rnn.tasks"]
    helpdesk = "my_package.tasks:HelpdeskTask"
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from llm_as_rnn import (
    ClassificationTask,
    Context,
    Observation,
    build_graph,
    open_storage,
    run_sequence,
)


class HelpdeskTask(ClassificationTask):
    """Escalate a ticket to the second line, or resolve it at the first."""

    name = "helpdesk"
    labels = ("escalate", "resolve")
    description = (
        "You triage helpdesk tickets. Each step is one ticket; decide whether the first "
        "line can resolve it or it must be escalated to engineers."
    )

    @property
    def question(self) -> str:
        """Ask for the triage decision."""
        return "Should this ticket be escalated or resolved by the first line?"


TICKETS = [
    ("Password reset link expired, user locked out.", "resolve"),
    ("Checkout returns HTTP 500 for every customer since the 14:00 deploy.", "escalate"),
    ("How do I export my invoices as PDF?", "resolve"),
    ("Database replica lag is 40 minutes and growing.", "escalate"),
    ("Printer on floor 3 shows a paper jam.", "resolve"),
    ("Customer data visible to another tenant after login.", "escalate"),
]


async def main(model: str, max_new_tokens: int) -> None:
    """Run the helpdesk sequence once and print what the memory learned."""
    task = HelpdeskTask()
    observations = [
        Observation(input=text, target=label, id=f"ticket-{n}")
        for n, (text, label) in enumerate(TICKETS, start=1)
    ]
    sampling = {role: {"max_new_tokens": max_new_tokens} for role in ("predictor", "critic")}
    context = Context(task=task, model=model, budget=512, seed=0, sampling=sampling)
    with tempfile.TemporaryDirectory() as folder:
        async with open_storage(str(Path(folder) / "helpdesk.db")) as (checkpointer, store):
            graph = build_graph(checkpointer, store)
            result = await run_sequence(
                graph,
                observations,
                thread_id="helpdesk-demo",
                context=context,
                on_step=lambda r: print(
                    f"step {r['step']}: predicted {r['prediction']['answer']}, truth {r['target']}"
                ),
            )
    print(f"\nmemory after {result.steps_done} tickets:\n{result.memory}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fake", help="model spec (fake)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="per call (64)")
    args = parser.parse_args()
    asyncio.run(main(args.model, args.max_new_tokens))
