"""Checks before a command runs: options, models, endpoint; then loading the models.

Everything a user can fix fails here as one ``ConfigError`` line, before any
checkpoint is written. Nothing here but ``load_models`` loads a model, so a
command checks a thread's identity between the two (``run``).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from llm_as_rnn.core.budget import check_run_budget
from llm_as_rnn.core.context import Context, make_context
from llm_as_rnn.core.memfile import MemoryFile
from llm_as_rnn.core.state import ROLES
from llm_as_rnn.core.warm import read_memory_file
from llm_as_rnn.runtime.resolve import aresolve, check_endpoint, check_spec
from llm_as_rnn.tasks import Task


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``make_context`` options set by the shared model flags."""
    return {
        "model": args.model,
        "base_url": args.base_url,
        "seed": args.seed,
        "timeout": args.timeout,
        "retries": args.retries,
        "max_new_tokens": args.max_new_tokens,
        "step_mode": args.step_mode,
        "preset": args.preset,
        "answer_mode": args.answer_mode,
        "rewrite_mode": args.rewrite_mode,
        "prompt_order": args.prompt_order,
        "structured": args.structured,
    }


def context_from_args(args: argparse.Namespace, task: str | Task) -> Context:
    """Build and validate the ``run`` context from parsed flags."""
    options = model_options(args) | {
        "task": task,
        "feedback": args.feedback,
        "freeze": args.freeze,
    }
    if args.budget is not None:
        options["budget"] = args.budget
    return make_context(**options)


async def check_models(ctx: Context) -> None:
    """Check every role's backend is installed and its endpoint answers (loads nothing)."""
    specs = [ctx.model_for(role) for role in ROLES]
    for spec in specs:
        check_spec(spec)
    if any(spec.kind == "openai" for spec in specs):
        await check_endpoint(ctx.endpoint().url())


async def load_models(ctx: Context, err: Console) -> None:
    """Load every role's model; refuse a budget too small for the task's initial memory."""
    with err.status(f"loading {ctx.model} ..."):
        for role in ROLES:
            await aresolve(ctx.model_for(role), ctx.endpoint())
    await check_run_budget(ctx, ctx.budget)  # the library's one check (the predictor is loaded)


def initial_memory_of(args: argparse.Namespace) -> MemoryFile | None:
    """Return the memory file of ``--init-memory`` (None without it), or a ``DataError``."""
    if not args.init_memory:
        return None
    return read_memory_file(args.init_memory, f"--init-memory {args.init_memory}")
