"""A run's memory budget, checked before its first step (and any model call).

The predict node refuses a budget too small for the task's section headers
(``memory.check_budget``); the size of the headers depends on the predictor's
tokenizer, so the check resolves the predictor (as the node will anyway).
Made before the graph runs, a bad budget leaves the thread as it was, never
with a step cut short.
"""

from __future__ import annotations

from llm_as_rnn.core.context import Context
from llm_as_rnn.core.memory import check_budget
from llm_as_rnn.runtime.resolve import aresolve
from llm_as_rnn.tasks import get_task


async def check_run_budget(context: Context, budget: int) -> None:
    """Raise ``ConfigError`` when a run's ``budget`` cannot hold the task's memory headers."""
    predictor = await aresolve(context.model_for("predictor"), context.endpoint())
    check_budget(budget, get_task(context.task).sections, predictor.count_tokens)
