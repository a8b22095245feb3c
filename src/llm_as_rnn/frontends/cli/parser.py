"""The command line's parser: its commands, and TOML config files (flags in ``flags``).

Every parse error is one line (``error: ...``) and exit code 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from importlib import metadata
from typing import Any, get_args

from llm_as_rnn.core.context import Context, FeedbackMode
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.evals.config import STATE_DB
from llm_as_rnn.evals.report import OUT_FILES
from llm_as_rnn.frontends.cli.flags import (
    Parser,
    add_choice,
    add_data_flags,
    add_init_memory,
    add_model_flags,
    add_positive,
    csv_list,
    int_list,
    non_negative,
    seed,
    thread_name,
    within,
)
from llm_as_rnn.frontends.cli.memory import add_memory_parser
from llm_as_rnn.runtime.paths import (
    DATABASE,
    INPUT_FILE,
    INPUT_FOLDER,
    READ_DATABASE,
    output_file,
    output_folder,
)
from llm_as_rnn.runtime.resolve import LOCAL_SETTINGS
from llm_as_rnn.tasks import ENTRY_POINT_GROUP, task_names


def version() -> str:
    """Return the installed package's version."""
    try:
        return metadata.version("llm-as-rnn")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


LOCAL_EPILOG = (
    f"Local models (embedded, hf:) read {', '.join(LOCAL_SETTINGS)} from the environment "
    "(whole numbers; README, 'Local models: batched generation')."
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
        epilog=LOCAL_EPILOG,
    )
    run.add_argument(
        "--task",
        default=None,
        help=f"task name: {', '.join(task_names())} (built in, or a plugin's: entry point "
        f"group {ENTRY_POINT_GROUP}); default weather",
    )
    add_data_flags(run, "--task")
    run.add_argument(
        "--sequence", default=None, help="with --data: the sequence_id to run (the first)"
    )
    add_positive(run, "--steps", None, "timesteps (5 of bundled data; all of a --data sequence)")
    run.add_argument(
        "--start", type=non_negative, default=0, help="first step of the sequence, from 0 (0)"
    )
    run.add_argument(
        "--budget",
        type=within(Context, "budget"),
        default=None,
        help="memory budget in predictor tokens (4096); unset, a thread resumes with its "
        "own; another budget goes on another default thread (see --thread)",
    )
    add_choice(
        run,
        "--feedback",
        get_args(FeedbackMode),
        "supervised: compare with the truth; judge: LLM critic, no truth; "
        "deferred: the truth is sent after the prediction",
    )
    run.add_argument(
        "--freeze",
        action="store_true",
        help="predict only, the memory never changes: one predictor call per step, no "
        "critique or rewrite (deployment); the truth, when known, is still scored",
    )
    run.add_argument(
        "--thread",
        type=thread_name,
        default=None,
        help="thread id (default: TASK-startK-FEEDBACK or FILE-SEQUENCE-startK-FEEDBACK; "
        "with -HASH of the settings when that thread was run with others)",
    )
    run.add_argument(
        "--db", default="llm-as-rnn.db", path=DATABASE, help="SQLite database (llm-as-rnn.db)"
    )
    add_init_memory(run)
    run.add_argument(
        "--allow-new-settings",
        action="store_true",
        help="continue a thread with settings (model, budget, ...) other than those it was "
        "run with, deliberately (e.g. after a model upgrade)",
    )
    run.add_argument("--seed", type=seed, default=None, help="sampling seed (reproducible draws)")
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
        epilog=LOCAL_EPILOG,
    )
    ev.add_argument(
        "--tasks",
        type=csv_list,
        default=None,
        help=f"comma-separated, of {', '.join(task_names())} (weather); with --data, the one "
        "task that reads the file",
    )
    ev.add_argument(
        "--methods",
        type=csv_list,
        default=["zero-shot", "fhc", "memprompt", "rnn", "rnn-judge"],
        help="zero-shot,fhc,memprompt,rnn,rnn-judge (default); rnn-warm,rnn-frozen with "
        "--train-sequences; the reference rows persistence, prior and zero (regression) "
        "are always reported",
    )
    add_init_memory(ev)
    add_positive(ev, "--sequences", 2, "sequences per task (2)")
    ev.add_argument(
        "--train-sequences",
        type=non_negative,
        default=0,
        help="K sequences, before the test ones and never one of them, learned in order on "
        "one thread; its memory starts rnn-warm and rnn-frozen and is written to --out (0)",
    )
    add_positive(ev, "--steps", 5, "steps per sequence, L (5)")
    add_positive(ev, "--concurrency", 4, "sequences at once (4)")
    ev.add_argument(
        "--out",
        required=True,
        path=output_folder(OUT_FILES, databases=[STATE_DB], marker="config.json"),
        help="output folder (holds the resumable state)",
    )
    ev.add_argument(
        "--db",
        default=None,
        path=DATABASE,
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
    ev.add_argument(
        "--budget", type=within(Context, "budget"), default=4096, help="memory budget (4096)"
    )
    ev.add_argument(
        "--budgets",
        type=int_list,
        default=None,
        help="a budget sweep, e.g. 256,1024,4096: the memory methods run once per budget "
        "and the report plots metric and tokens against the budget",
    )
    ev.add_argument(
        "--seed", type=seed, default=0, help="seed of the sequence draw and sampling (0)"
    )
    add_positive(
        ev,
        "--context-window",
        8192,
        "model context in tokens; FHC drops its oldest steps to fit (8192)",
    )
    add_data_flags(ev, "--tasks")
    ev.add_argument(
        "--mimic-dir",
        default=None,
        path=INPUT_FOLDER,
        help="your MIMIC-IV directory (hosp/, note/)",
    )
    add_model_flags(ev)

    tr: Parser = commands.add_parser(
        "trace",
        help="show how a thread's memory evolved, step by step (terminal or HTML)",
        description="Print a thread's learning trace: each step's input, prediction, truth, "
        "feedback and coloured memory diff. --html writes one self-contained page with a "
        "timeline, side-by-side memory diffs and plots. Without --thread, list the threads.",
    )
    tr.add_argument(
        "--thread", type=thread_name, default=None, help="thread id (omit to list the threads)"
    )
    tr.add_argument(
        "--db",
        default="llm-as-rnn.db",
        path=READ_DATABASE,
        help="SQLite database (llm-as-rnn.db), opened read-only",
    )
    tr.add_argument(
        "--html",
        default=None,
        path=output_file(b"<!doctype html"),
        help="write the page to this file (replaces only a page written before)",
    )
    tr.add_argument(
        "--config", default=None, path=INPUT_FILE, help="TOML file of options (flags override it)"
    )
    parser.commands = {"run": run, "eval": ev, "trace": tr, "memory": add_memory_parser(commands)}
    for command in parser.commands.values():
        command.family = parser.commands
    return parser


def load_config(path: str, parser: Parser) -> dict[str, Any]:
    """Read a TOML config: top-level options and/or a ``[run]`` / ``[eval]`` / ``[trace]`` table.

    Values become the parser's defaults as strings, so they are checked by the
    same types as flags; flags given on the command line override them. One
    file may serve every command (``parser.family``): a top-level option that
    only another command takes (``thread`` in an ``eval``) is left to it, and
    its table ignored; a key or table no command takes is refused.
    """
    import tomllib

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory: give a TOML file") from None
    except OSError as exc:  # no permission, a device, a FIFO...
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text: give a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
    command = parser.prog.split()[-1]
    commands = parser.family or {command: parser}
    for name, value in data.items():
        if isinstance(value, dict) and name not in commands:
            raise ConfigError(
                f"config file {path}: unknown table [{name}]: use {', '.join(commands)}"
            )
    elsewhere = {dest for other in commands.values() for dest in other.dests} - parser.dests
    values = {
        k: v
        for k, v in data.items()
        if not isinstance(v, dict) and k.replace("-", "_") not in elsewhere
    }
    table = data.get(command, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: {command} must be a table ([{command}])")
    values |= table
    known = parser.dests
    out: dict[str, Any] = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in known or dest in ("config", "help"):
            raise ConfigError(f"config file {path}: unknown option {key!r} for {command}")
        if dest in parser.on_off and isinstance(value, bool):  # TOML's word for on/off
            value = "on" if value else "off"
        if (dest in parser.switches) != isinstance(value, bool):  # "false" is true to argparse
            wanted = "true or false" if dest in parser.switches else "a value, not true/false"
            shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as in TOML
            raise ConfigError(f"config file {path}: {key} takes {wanted}, got {shown}")
        if isinstance(value, bool):
            out[dest] = value
        elif isinstance(value, list):
            out[dest] = ",".join(map(str, value))
        else:
            out[dest] = str(value)
    return out


def check_data_flags(args: argparse.Namespace) -> None:
    """Refuse ``--labels`` for a named task's file (it has its own labels: they'd be ignored).

    Without ``--data`` the command's own check says ``--labels`` goes with a file.
    """
    labelled = getattr(args, "labels", None) is not None and getattr(args, "data", None)
    if labelled and args.task_type is None:
        task_flag = "--task" if args.command == "run" else "--tasks"
        raise ConfigError(
            f"--labels goes with --task-type classification: a task named by {task_flag} "
            "has its own labels (drop --labels)"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags, with defaults from ``--config`` when given; check the command's paths.

    Every path flag's role is declared where the flag is (``path=``), so an
    output that would clobber an input is refused here, before any file opens.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = parser.commands[args.command]
    sub = sub.verbs.get(getattr(args, "verb", ""), sub)  # memory VERB: its own paths
    if getattr(args, "config", None):
        sub.set_defaults(**load_config(args.config, sub))
        args = parser.parse_args(argv)
    sub.declared(args).check()
    check_data_flags(args)
    if getattr(args, "api_key", None):
        # This process and its workers only; the value stays registered for redaction.
        os.environ["OPENAI_API_KEY"] = args.api_key.get_secret_value()
    return args
