"""The command line's flags: one-line-error parser, argument types, shared flag groups."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, get_args

from pydantic import BaseModel

from llm_as_rnn.core import sequence
from llm_as_rnn.core.context import (
    MAX_SECONDS,
    MAX_SEED,
    PRESETS,
    AnswerMode,
    Context,
    PromptOrder,
    RewriteMode,
    StepMode,
    describe_preset,
)
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime.paths import INPUT_FILE, MODEL, Paths, Role
from llm_as_rnn.runtime.secrets import Secret
from llm_as_rnn.runtime.spec import SPEC_FORMS, Sampling

EXIT_USAGE = 2
"""Exit code of every error a user can fix."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2.

    Flags must be spelled out: an abbreviation (``--api`` for ``--api-key``)
    is refused, so every flag a command takes has exactly one spelling. It
    remembers its flags' destinations and its subcommands, so config files
    are checked against them without argparse's private attributes, and what
    each path flag is (``path=``), so every command's paths are checked before
    it runs (``runtime.paths``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.dests: set[str] = set()  # before super(), which adds --help
        self.switches: set[str] = set()
        self.on_off: set[str] = set()  # flags taking on/off: a config file may say true/false
        self.paths: dict[str, tuple[str, Role]] = {}
        self.commands: dict[str, Parser] = {}
        self.family: dict[str, Parser] = {}  # a command's siblings: they share config files
        self.verbs: dict[str, Parser] = {}  # a command with verbs (memory log, ...): their parsers
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def add_argument(self, *args: Any, path: Role | None = None, **kwargs: Any) -> argparse.Action:
        """Add a flag, remembering its destination and, for a path, its ``Role``."""
        action = super().add_argument(*args, **kwargs)
        self.dests.add(action.dest)
        if action.nargs == 0 and action.const is True:  # store_true: a switch
            self.switches.add(action.dest)
        if action.type is on_off:
            self.on_off.add(action.dest)
        if path is not None:
            self.paths[action.dest] = (action.option_strings[0], path)
        return action

    def parse_args(  # type: ignore[override]  # one signature of the overloads is enough
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse flags; name unknown ones without the words after them (a value may be a key).

        The error points to the help of the command they were given to.
        """
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            flags = [word.split("=")[0] for word in extra if word.startswith("-")]
            owner = self.commands.get(getattr(parsed, "command", None) or "", self)
            owner.error(f"unrecognized arguments: {' '.join(flags or extra)}")
        return parsed

    def declared(self, args: argparse.Namespace) -> Paths:
        """Return the paths that parsed ``args`` of this command read and write."""
        found = Paths()
        for dest, (flag, role) in self.paths.items():
            value = getattr(args, dest)
            if value:  # an empty value means the flag's feature is off
                found.add(flag, value, role)
        return found

    def error(self, message: str) -> NoReturn:
        """Print one line and exit 2."""
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def bounded(
    convert: Callable[[str], float],
    noun: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
) -> Callable[[str], Any]:
    """Return an argparse type: ``convert``, then check its bounds."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None
        if value != value:  # NaN passes every comparison
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be > {above}, got {value}")
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"must be >= {at_least}, got {value}")
        if at_most is not None and value > at_most:
            raise argparse.ArgumentTypeError(f"must be <= {at_most}, got {text}")
        return value

    return parse


def within(model: type[BaseModel], field: str) -> Callable[[str], Any]:
    """Return an argparse type for integers that ``model.field`` accepts (its declared bounds).

    So a flag that sets a field is refused in the flag's name (``argument
    --retries: must be <= 20``), never later in the field's.
    """
    metadata = model.model_fields[field].metadata

    def limit(name: str) -> Any:
        return next((getattr(m, name) for m in metadata if hasattr(m, name)), None)

    return bounded(int, "an integer", above=limit("gt"), at_least=limit("ge"), at_most=limit("le"))


MAX_COUNT = 2**31 - 1
"""The largest count a flag takes (steps, sequences, workers...): past it is a typo."""

positive = bounded(int, "an integer", above=0, at_most=MAX_COUNT)
"""An argparse type accepting integers from 1 to ``MAX_COUNT``."""

non_negative = bounded(int, "an integer", at_least=0, at_most=MAX_COUNT)
"""An argparse type accepting integers from 0 to ``MAX_COUNT``."""
seconds = bounded(float, "a number of seconds", at_least=0.01, at_most=MAX_SECONDS)
"""An argparse type accepting a number of seconds from 0.01 (a request takes longer) to a week."""
seed = bounded(int, "an integer", at_least=0, at_most=MAX_SEED)
"""An argparse type accepting a sampling seed."""


def thread_name(text: str) -> str:
    """Parse a thread id by the library's one rule (``core.sequence.thread_name``).

    A blank id would silently be the default thread; a control character
    (newline, escape) garbles every line that shows it.
    """
    try:
        return sequence.thread_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def on_off(value: str) -> bool:
    """Read an ``on``/``off`` flag value."""
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"invalid value {value!r}: use on or off")
    return value == "on"


def add_choice(p: Parser, flag: str, choices: tuple[str, ...], help: str) -> None:
    """Add a flag taking one of ``choices`` (the first is the default)."""
    p.add_argument(flag, choices=choices, default=choices[0], help=help)


def add_model_flags(p: Parser) -> None:
    """Flags shared by every command that calls a model."""
    p.add_argument(
        "--model",
        default="embedded",
        path=MODEL,
        help=f"{' | '.join(SPEC_FORMS)} (%(default)s)",
    )
    p.add_argument(
        "--base-url", default=None, help="OpenAI-compatible endpoint (else OPENAI_BASE_URL)"
    )
    p.add_argument(
        "--api-key",
        type=Secret,
        default=None,
        help="API key (else OPENAI_API_KEY; prefer the variable: flags show in process lists)",
    )
    p.add_argument("--timeout", type=seconds, default=60.0, help="seconds per model request (60)")
    p.add_argument(
        "--retries",
        type=within(Context, "max_attempts"),
        default=4,
        help="attempts per model call on timeouts, 429 and 5xx (4)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=within(Sampling, "max_new_tokens"),
        default=None,
        help="cap on generated tokens per call, every role",
    )
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
    p.add_argument(
        "--structured",
        type=on_off,
        metavar="{on,off}",
        default=None,
        help="on (default): memory updates and verdicts decoded under their grammar (local "
        "models) or JSON schema (endpoints' structured outputs); off: free text, then the "
        "parser (as --preset paper); choice answers keep their schema either way",
    )
    add_choice(
        p,
        "--prompt-order",
        get_args(PromptOrder),
        "role-first: each role's instructions first; memory-first: every prompt opens with "
        "the memory, so servers with prefix caching reuse it across a step's calls",
    )
    add_choice(
        p,
        "--answer-mode",
        get_args(AnswerMode),
        "free: generate, then parse (the paper); choice: a probability per label, scored "
        "by the model, never invalid (classification tasks; local models, fakes, and openai: "
        "endpoints with logprobs or structured outputs, see the README)",
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
    p.add_argument(
        "--config", default=None, path=INPUT_FILE, help="TOML file of options (flags override it)"
    )


def add_data_flags(p: Parser, task_flag: str) -> None:
    """Flags that read a user's file of sequences instead of bundled data."""
    p.add_argument(
        "--data",
        default=None,
        path=INPUT_FILE,
        help="your CSV/JSONL: sequence_id, step, input, target",
    )
    p.add_argument(
        "--task-type",
        choices=["classification", "regression"],
        default=None,
        help=f"with --data and no {task_flag}: classification or regression",
    )
    p.add_argument(
        "--labels",
        type=csv_list,
        default=None,
        help=f"with --task-type classification: the label set (inferred); not with {task_flag}",
    )


def add_init_memory(p: Parser) -> None:
    """Add ``--init-memory``: a warm start, from a memory file or a memory text."""
    p.add_argument(
        "--init-memory",
        default=None,
        path=INPUT_FILE,
        help="start new threads from this memory (a file written by `memory export`, or "
        "the memory as text with the task's sections); over the budget it is truncated",
    )
