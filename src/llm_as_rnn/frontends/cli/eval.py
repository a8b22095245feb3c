"""``llm-as-rnn eval``: the paper's comparison of methods, resumable and sharded."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import fields

from rich.console import Console

from llm_as_rnn.core.context import make_context
from llm_as_rnn.errors import USER_ERRORS, ConfigError
from llm_as_rnn.evals.columns import terminal_table
from llm_as_rnn.evals.config import EvalConfig
from llm_as_rnn.evals.runner import run_eval
from llm_as_rnn.frontends.cli.output import report_failure
from llm_as_rnn.frontends.cli.preflight import check_models, initial_memory_of, model_options


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """Parse ``I/N`` (worker I of N, from 0); raise ``ConfigError`` when malformed."""
    if text is None:
        return None
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not int(index) < int(count):
        raise ConfigError(f"bad --shard {text!r}: use I/N with 0 <= I < N, e.g. 0/2")
    return int(index), int(count)


def hide_key(words: Sequence[str]) -> list[str]:
    """Return command words with the value of ``--api-key`` hidden (flags are never abbreviated)."""
    out: list[str] = []
    for word in words:
        if out and out[-1] == "--api-key":
            word = "REDACTED"
        elif word.startswith("--api-key="):
            word = "--api-key=REDACTED"
        out.append(word)
    return out


async def eval_command(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Run (or resume) an evaluation; return the exit code."""
    given = {f.name for f in fields(EvalConfig)} & set(vars(args)) - {"shard", "tasks"}
    cfg = EvalConfig(
        **{name: getattr(args, name) for name in given},
        shard=parse_shard(args.shard),
        request_timeout=args.timeout,
        max_attempts=args.retries,
        tasks=args.tasks if args.tasks is not None else ([] if args.data else ["weather"]),
        initial_memory=initial_memory_of(args),
    )
    err = Console(stderr=True)
    cfg.validate()
    await check_models(make_context(**model_options(args)))
    words = sys.argv[1:] if argv is None else list(argv)
    # Its secrets are redacted by value where it is written; a key too short to
    # redact by value (a local server's dummy) is hidden by its place too.
    command = shlex.join(["llm-as-rnn", *hide_key(words)])
    try:
        summary = await run_eval(cfg, command, err)
    except USER_ERRORS:
        raise
    except Exception as exc:
        report_failure(exc, "finished steps are saved")
        return 1
    for line in terminal_table(summary["results"]):
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    rows = sum(len(methods) for methods in summary["results"].values())
    trained = [m["file"] for t in summary.get("training", {}).values() for m in t.values()]
    files = ", ".join(["summary.json", "steps.jsonl", *(f for f in trained if f)])
    wrote = f"wrote {args.out}/report.md ({rows} result rows), {files}"
    err.print(wrote, markup=False, highlight=False, soft_wrap=True)
    return 0
