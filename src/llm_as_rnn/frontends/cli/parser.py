"""The command line's parser: flags, their types, and TOML config files.

Every parse error is one line (``error: ...``) and exit code 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, NoReturn, get_args

from llm_as_rnn.core.context import (
    PRESETS,
    AnswerMode,
    FeedbackMode,
    RewriteMode,
    StepMode,
    describe_preset,
)
from llm_as_rnn.errors import ConfigError

EXIT_USAGE = 2
"""Exit code of every error a user can fix."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2.

    It remembers its flags' destinations and its subcommands, so config files
    are checked against them without argparse's private attributes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.dests: set[str] = set()  # before super(), which adds --help
        self.commands: dict[str, Parser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Add a flag, remembering its destination."""
        action = super().add_argument(*args, **kwargs)
        self.dests.add(action.dest)
        return action

    def error(self, message: str) -> NoReturn:
        """Print one line and exit 2."""
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def version() -> str:
    """Return the installed package's version."""
    try:
        return metadata.version("llm-as-rnn")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def bounded(
    convert: Callable[[str], float],
    noun: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
) -> Callable[[str], Any]:
    """Return an argparse type: ``convert``, then check a lower bound."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be > {above}, got {value}")
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"must be >= {at_least}, got {value}")
        return value

    return parse


positive = bounded(int, "an integer", above=0)
"""An argparse type accepting integers > 0."""

non_negative = bounded(int, "an integer", at_least=0)
"""An argparse type accepting integers >= 0."""
seconds = bounded(float, "a number of seconds", above=0)
"""An argparse type accepting a positive number of seconds."""


def csv_list(text: str) -> list[str]:
    """Parse a comma-separated list (blank items dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def int_list(text: str) -> list[int]:
    """Parse a comma-separated list of positive integers (``256,1024,4096``)."""
    items = csv_list(text)
    if not items or not all(item.isdigit() and int(item) > 0 for item in items):
        raise argparse.ArgumentTypeError(f"must be positive integers like 256,1024, got {text!r}")
    return [int(item) for item in items]


def add_positive(p: Parser, flag: str, default: int | None, help: str) -> None:
    """Add an integer flag that must be > 0."""
    p.add_argument(flag, type=positive, default=default, help=help)


def add_choice(p: Parser, flag: str, choices: tuple[str, ...], help: str) -> None:
    """Add a flag taking one of ``choices`` (the first is the default)."""
    p.add_argument(flag, choices=choices, default=choices[0], help=help)


def add_model_flags(p: Parser) -> None:
    """Flags shared by every command that calls a model."""
    p.add_argument(
        "--model",
        default="embedded",
        help="embedded | hf:<dir or id>[#file.gguf] | openai:<model> | fake[:seed[:latency_ms]]",
    )
    p.add_argument(
        "--base-url", default=None, help="OpenAI-compatible endpoint (else OPENAI_BASE_URL)"
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="API key (else OPENAI_API_KEY; prefer the variable: flags show in process lists)",
    )
    p.add_argument("--timeout", type=seconds, default=60.0, help="seconds per model request (60)")
    add_positive(p, "--retries", 4, "attempts per model call on timeouts, 429 and 5xx (4)")
    add_positive(p, "--max-new-tokens", None, "cap on generated tokens per call, every role")
    add_choice(
        p,
        "--step-mode",
        get_args(StepMode),
        "three-call: the paper's step; fused: critique+rewrite in one call; "
        "lazy: no rewrite after a right prediction",
    )
    add_choice(
        p,
        "--rewrite-mode",
        get_args(RewriteMode),
        "full: the rewriter writes the whole memory (the paper); delta: a few operations "
        "on numbered notes, applied by code (fewer output tokens per step)",
    )
    add_choice(
        p,
        "--answer-mode",
        get_args(AnswerMode),
        "free: generate, then parse (the paper); choice: a probability per label, scored "
        "by the model, never invalid (classification; local models and fakes)",
    )
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="named settings; other flags override them. paper: "
        + describe_preset("paper").replace("%", "%%"),
    )
    p.add_argument(
        "--truth-free",
        action="store_true",
        help="drop the input fields that show an earlier step's truth (today's weather is "
        "yesterday's target), so judge feedback sees no truth at all",
    )
    p.add_argument("--config", default=None, help="TOML file of options (flags override it)")


def add_data_flags(p: Parser, task_flag: str) -> None:
    """Flags that read a user's file of sequences instead of bundled data."""
    p.add_argument("--data", default=None, help="your CSV/JSONL: sequence_id, step, input, target")
    p.add_argument(
        "--task-type",
        choices=["classification", "regression"],
        default=None,
        help=f"with --data and no {task_flag}: classification or regression",
    )
    p.add_argument(
        "--labels", type=csv_list, default=None, help="with --task-type: the label set (inferred)"
    )


def build_parser() -> Parser:
    """Return the command-line parser."""
    parser = Parser(
        prog="llm-as-rnn",
        description="A frozen LLM as a recurrent predictor with a rewritable memory.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run: Parser = commands.add_parser(
        "run",
        help="run a sequence, one timestep per step, resumable",
        description="Run a task's sequence through predict -> critique -> rewrite, "
        "one timestep at a time. Re-running the same command resumes after the last "
        "finished step.",
    )
    run.add_argument(
        "--task",
        default=None,
        help="task name: built in (weather, sp500, mimic) or a plugin's (entry point group "
        "llm_as_rnn.tasks); default weather",
    )
    add_data_flags(run, "--task")
    run.add_argument(
        "--sequence", default=None, help="with --data: the sequence_id to run (the first)"
    )
    add_positive(run, "--steps", None, "timesteps (5 of bundled data; all of a --data sequence)")
    run.add_argument(
        "--start", type=non_negative, default=0, help="first step of the sequence, from 0 (0)"
    )
    add_positive(
        run,
        "--budget",
        None,
        "memory budget in predictor tokens (4096; a resumed thread keeps its own)",
    )
    add_choice(
        run,
        "--feedback",
        get_args(FeedbackMode),
        "supervised: compare with the truth; judge: LLM critic, no truth; "
        "deferred: the truth is sent after the prediction",
    )
    run.add_argument(
        "--thread",
        default=None,
        help="thread id (default: TASK-startK-FEEDBACK, or FILE-SEQUENCE-startK-FEEDBACK)",
    )
    run.add_argument("--db", default="llm-as-rnn.db", help="SQLite database (llm-as-rnn.db)")
    run.add_argument(
        "--allow-new-settings",
        action="store_true",
        help="continue a thread with settings (model, budget, ...) other than those it was "
        "run with, deliberately (e.g. after a model upgrade)",
    )
    run.add_argument("--seed", type=int, default=None, help="sampling seed (reproducible draws)")
    add_model_flags(run)
    run.add_argument(
        "--json", action="store_true", help="print one JSON object per step, nothing else"
    )

    ev: Parser = commands.add_parser(
        "eval",
        help="compare zero-shot, FHC, MemPrompt and LLM-as-RNN on sequences, resumable",
        description="Run the paper's comparison: every method on N sequences of L steps per "
        "task, concurrently. Re-running the same command resumes; finished steps are kept. "
        "Writes steps.jsonl, summary.json, timing.json, report.md and PNG plots to --out.",
    )
    ev.add_argument(
        "--tasks",
        type=csv_list,
        default=None,
        help="weather,sp500,mimic or plugin tasks (weather); with --data, the one task "
        "that reads the file",
    )
    ev.add_argument(
        "--methods",
        type=csv_list,
        default=["zero-shot", "fhc", "memprompt", "rnn", "rnn-judge"],
        help="zero-shot,fhc,memprompt,rnn,rnn-judge (all); the reference rows persistence, "
        "prior and zero (regression) are always reported",
    )
    add_positive(ev, "--sequences", 2, "sequences per task (2)")
    add_positive(ev, "--steps", 5, "steps per sequence, L (5)")
    add_positive(ev, "--concurrency", 4, "sequences at once (4)")
    ev.add_argument("--out", required=True, help="output folder (holds the resumable state)")
    ev.add_argument(
        "--db",
        default=None,
        help="state database: OUT/state.db (default), a file, or a postgresql:// URL "
        "that workers share",
    )
    ev.add_argument(
        "--shard",
        default=None,
        help="I/N: run only every N-th (task, method, sequence), from the I-th "
        "(machines share --db)",
    )
    add_positive(
        ev,
        "--workers",
        1,
        "worker processes on this machine sharing the state (1); one per core "
        "when an endpoint answers faster than one process can send",
    )
    add_positive(ev, "--budget", 4096, "memory budget (4096)")
    ev.add_argument(
        "--budgets",
        type=int_list,
        default=None,
        help="a budget sweep, e.g. 256,1024,4096: the memory methods run once per budget "
        "and the report plots metric and tokens against the budget",
    )
    ev.add_argument(
        "--seed", type=int, default=0, help="seed of the sequence draw and sampling (0)"
    )
    add_positive(
        ev,
        "--context-window",
        8192,
        "model context in tokens; FHC drops its oldest steps to fit (8192)",
    )
    add_data_flags(ev, "--tasks")
    ev.add_argument("--mimic-dir", default=None, help="your MIMIC-IV directory (hosp/, note/)")
    add_model_flags(ev)

    tr: Parser = commands.add_parser(
        "trace",
        help="show how a thread's memory evolved, step by step (terminal or HTML)",
        description="Print a thread's learning trace: each step's input, prediction, truth, "
        "feedback and coloured memory diff. --html writes one self-contained page with a "
        "timeline, side-by-side memory diffs and plots. Without --thread, list the threads.",
    )
    tr.add_argument("--thread", default=None, help="thread id (omit to list the threads)")
    tr.add_argument("--db", default="llm-as-rnn.db", help="SQLite database (llm-as-rnn.db)")
    tr.add_argument("--html", default=None, help="write the page to this file")
    tr.add_argument("--config", default=None, help="TOML file of options (flags override it)")
    parser.commands = {"run": run, "eval": ev, "trace": tr}
    return parser


def load_config(path: str, parser: Parser) -> dict[str, Any]:
    """Read a TOML config: top-level options and/or a ``[run]`` / ``[eval]`` table.

    Values become the parser's defaults as strings, so they are checked by the
    same types as flags; flags given on the command line override them.
    """
    import tomllib

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
    command = parser.prog.split()[-1]
    values = {k: v for k, v in data.items() if not isinstance(v, dict)}
    values |= data.get(command, {})
    known = parser.dests
    out: dict[str, Any] = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in known or dest in ("config", "help"):
            raise ConfigError(f"config file {path}: unknown option {key!r} for {command}")
        if isinstance(value, bool):
            out[dest] = value
        elif isinstance(value, list):
            out[dest] = ",".join(map(str, value))
        else:
            out[dest] = str(value)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags, with defaults from ``--config`` when given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        sub = parser.commands[args.command]
        sub.set_defaults(**load_config(args.config, sub))
        args = parser.parse_args(argv)
    if getattr(args, "api_key", None):
        os.environ["OPENAI_API_KEY"] = args.api_key  # this process only; never stored
    return args
