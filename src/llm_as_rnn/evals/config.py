"""What an evaluation runs: its options, validated, and each method's run context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from llm_as_rnn.core.context import Context, make_context
from llm_as_rnn.core.identity import digest, prompts_digest, settings_of
from llm_as_rnn.core.memfile import MemoryFile, check_for_task
from llm_as_rnn.core.memory import TokenCounter, fit_to_budget
from llm_as_rnn.core.state import Observation
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.evals import baselines
from llm_as_rnn.runtime.secrets import public_url
from llm_as_rnn.tasks import ClassificationTask, Task

REFERENCES = ("persistence", "prior", "zero")
"""Methods that make no model call (``evals.references``); every report has them."""
METHODS = ("zero-shot", "fhc", "memprompt", "rnn", "rnn-judge", "rnn-warm", "rnn-frozen")
"""Every model method an evaluation compares."""
BASELINES = ("zero-shot", "fhc", "memprompt")
"""The model methods that do not run the graph."""
MEMORY_METHODS = ("rnn", "rnn-judge", "rnn-warm", "rnn-frozen")
"""The methods with a memory under a budget (``--budgets`` runs them once per budget)."""
TRANSFER_METHODS = ("rnn-warm", "rnn-frozen")
"""The methods that start from the memory learned on the training sequences
(``--train-sequences``): ``rnn-warm`` keeps learning, ``rnn-frozen`` does not."""
STATE_DB = "state.db"
"""The state database's name in ``--out`` when no ``--db`` is given."""

MAX_WORKERS = 256
"""The most worker processes one machine runs (``--workers``)."""

NOT_RESULTS = frozenset(
    {"out", "db", "shard", "workers", "concurrency", "request_timeout", "max_attempts"}
)
"""``EvalConfig`` fields that cannot change results: where they go, how patiently."""

SELECTION = frozenset(
    {"tasks", "methods", "sequences", "train_sequences", "steps", "budgets", "data", "mimic_dir"}
)
"""``EvalConfig`` fields that choose which units run, not how one runs: a unit's
key hashes its own task, method (budget included), context and observations."""


def base_method(method: str) -> str:
    """Return a method's name without its budget (``rnn@1024`` -> ``rnn``)."""
    return method.partition("@")[0]


def method_budget(method: str) -> int | None:
    """Return the budget in a method's name (``rnn@1024`` -> 1024), None if none."""
    _, at, budget = method.partition("@")
    return int(budget) if at else None


def training_method(method: str) -> str:
    """Return the ``rnn`` that learns a transfer method's memory (``rnn-warm@64``: ``rnn@64``).

    Supervised, from h_0, at the transfer method's budget.
    """
    _, at, budget = method.partition("@")
    return f"rnn{at}{budget}"


@dataclass
class EvalConfig:
    """Everything an evaluation run needs."""

    out: str
    model: str = "embedded"
    tasks: list[str] = field(default_factory=lambda: ["weather"])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    sequences: int = 2
    train_sequences: int = 0
    """Sequences learned on before the test ones, in order on one thread; their
    memory starts ``TRANSFER_METHODS`` (0: no training)."""
    steps: int = 5
    initial_memory: MemoryFile | None = None
    """A warm start (``--init-memory``): every memory method, and the training of
    ``TRANSFER_METHODS``, starts from this memory instead of the task's h_0."""
    seed: int = 0
    budget: int = 4096
    budgets: list[int] | None = None
    """A budget sweep: the memory methods run once per budget (``rnn@256``, ...)."""
    preset: str | None = None
    """``paper``: the paper's sampling for every role (``core.context.PRESETS``)."""
    truth_free: bool = False
    """Drop the inputs' lagged-truth fields (judge mode without any truth)."""
    concurrency: int = 4
    context_window: int = 8192
    max_new_tokens: int | None = None
    """Every role's token cap (None: each role's own default, without a preset)."""
    base_url: str | None = None
    data: str | None = None
    task_type: Literal["classification", "regression"] | None = None
    labels: list[str] | None = None
    mimic_dir: str | None = None
    step_mode: str = "three-call"
    answer_mode: str = "free"
    """``choice``: classification answers as label probabilities (``Context.answer_mode``)."""
    rewrite_mode: str = "full"
    """``delta``: memory updates as operations on numbered notes (``Context.rewrite_mode``)."""
    prompt_order: str = "role-first"
    """``memory-first``: every prompt opens with the memory (``Context.prompt_order``)."""
    structured: bool | None = None
    """Constrained memory updates (``Context.structured``); None given: the preset's, else on."""
    request_timeout: float = 60.0
    max_attempts: int = 4
    db: str | None = None
    """State database; default ``OUT/state.db``. A PostgreSQL URL lets workers share it."""
    shard: tuple[int, int] | None = None
    """``(i, n)``: this worker runs the k-th (task, method, sequence) when ``k % n == i``."""
    workers: int = 1
    """Worker processes on this machine, each a shard ``i/workers`` sharing the database."""

    def __post_init__(self) -> None:
        """Resolve what was left to the preset or the defaults (None: not given).

        Stored resolved, the options an evaluation records (``config.json``,
        ``summary.json``) say what ran, and equal settings are equal whether
        given or implied (``--structured on`` is the default).
        """
        implied = make_context(preset=self.preset)
        if self.structured is None:
            self.structured = implied.structured
        caps = {sampling.max_new_tokens for sampling in implied.sampling.values()}
        if self.max_new_tokens is None and len(caps) == 1:  # a preset's cap for every role
            self.max_new_tokens = caps.pop()

    def identity(self) -> dict[str, Any]:
        """Return what determines the results: every field but ``NOT_RESULTS``.

        The base URL without its credentials: they never change results.
        """
        fields = {k: v for k, v in asdict(self).items() if k not in NOT_RESULTS}
        if self.initial_memory is not None:  # known by its hash, as a thread's identity holds it
            fields["initial_memory"] = "sha256:" + self.initial_memory.sha256
        if self.base_url is not None:
            fields["base_url"] = public_url(self.base_url)
        return fields

    def model_methods(self) -> list[str]:
        """Return the model methods to run, each memory method once per swept budget."""
        out: list[str] = []
        for method in self.methods:
            if method in REFERENCES:
                continue
            if method in MEMORY_METHODS and self.budgets:
                out += [f"{method}@{b}" for b in self.budgets]
            else:
                out.append(method)
        return out

    def report_methods(self) -> list[str]:
        """Return every method a report shows: the references first, then the models'."""
        return [*REFERENCES, *self.model_methods()]

    def validate(self) -> None:
        """Raise ``ConfigError`` on a bad combination of options."""
        known = (*REFERENCES, *METHODS)
        unknown = [m for m in self.methods if m not in known]
        if unknown:
            raise ConfigError(f"unknown method {unknown[0]!r}: choose from {', '.join(known)}")
        if self.budgets is not None and (not self.budgets or min(self.budgets) < 1):
            raise ConfigError(f"--budgets must be positive integers, got {self.budgets}")
        if not self.methods:
            raise ConfigError("no --methods given")
        repeated = sorted({m for m in self.methods if self.methods.count(m) > 1})
        if repeated:
            raise ConfigError(f"--methods names {repeated[0]} twice: give each method once")
        if not self.data and (self.labels is not None or self.task_type is not None):
            flag = "--labels" if self.labels is not None else "--task-type"
            raise ConfigError(f"{flag} goes with --data FILE")
        for name, value in (
            ("--sequences", self.sequences),
            ("--steps", self.steps),
            ("--concurrency", self.concurrency),
            ("--budget", self.budget),
            ("--workers", self.workers),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be > 0, got {value}")
        transfer = [m for m in self.methods if m in TRANSFER_METHODS]
        if self.train_sequences < 0:
            raise ConfigError(f"--train-sequences must be >= 0, got {self.train_sequences}")
        if transfer and not self.train_sequences:
            raise ConfigError(
                f"{transfer[0]} starts from a memory learned first: add --train-sequences K "
                "(K sequences, before the test ones, learned in order on one thread)"
            )
        if self.train_sequences and not transfer:
            raise ConfigError(
                "--train-sequences learns the memory of rnn-warm and rnn-frozen: add one "
                "of them to --methods (or drop --train-sequences)"
            )
        if self.data and self.task_type and self.tasks:
            raise ConfigError("--data takes --task-type or --tasks NAME, not both")
        if self.data and not self.task_type and len(self.tasks) != 1:
            raise ConfigError(
                "--data needs --tasks NAME (one task that reads the file) or "
                "--task-type classification|regression"
            )
        if not self.data and not self.tasks:
            raise ConfigError("no --tasks given")
        if self.workers > MAX_WORKERS:
            raise ConfigError(f"--workers {self.workers} is more than {MAX_WORKERS}: lower it")
        if self.workers > 1 and self.shard is not None:
            raise ConfigError("--workers and --shard do not mix: give one of them")

    def check(self, tasks: Sequence[Task], count: TokenCounter | None = None) -> None:
        """Raise one-line ``ConfigError`` for any method's settings, before any step.

        Builds every method's context for every task (the bounds ``run`` checks
        at its start: budget, seed, sampling...) and, given the predictor's
        token counter, checks each memory method's budget holds the task's
        section headers.
        """
        for task in tasks:
            if self.initial_memory is not None:
                check_for_task(self.initial_memory, task.name, task.sections)
            for method in self.model_methods():
                ctx = self.context(task, method)
                if count is None or base_method(method) not in MEMORY_METHODS:
                    continue
                try:
                    fit_to_budget(task.initial_memory(), task.sections, ctx.budget, count)
                except ValueError as exc:
                    flag = "--budgets" if method_budget(method) else "--budget"
                    raise ConfigError(f"{flag}: {exc} (task {task.name})") from None

    def free_answers(self, tasks: Sequence[Task]) -> list[str]:
        """Return a warning line per task that ``--answer-mode choice`` cannot serve.

        Choice mode scores a fixed label set: a task without one (regression)
        answers in free text; when no task has one, the flag is a mistake.
        """
        if self.answer_mode != "choice":
            return []
        free = [t.name for t in tasks if not isinstance(t, ClassificationTask)]
        if free and len(free) == len(tasks):
            raise ConfigError(
                f"--answer-mode choice scores a fixed label set, and {', '.join(free)} "
                "has none: use --answer-mode free"
            )
        return [f"warning: {name} has no label set: its answers are free text" for name in free]

    def context(self, task: Task, method: str, initial_memory: str | None = None) -> Context:
        """Return the run context of one method (``rnn@1024``: at budget 1024).

        ``initial_memory``: a transfer method's trained memory (None: the
        ``--init-memory`` one for a memory method, else the task's h_0).
        """
        memory_method = base_method(method) in MEMORY_METHODS
        if initial_memory is None and self.initial_memory is not None and memory_method:
            initial_memory = self.initial_memory.memory
        return make_context(
            preset=self.preset,
            task=task,
            model=self.model,
            base_url=self.base_url,
            budget=method_budget(method) or self.budget,
            seed=self.seed,
            feedback="judge" if base_method(method) == "rnn-judge" else "supervised",
            freeze=base_method(method) == "rnn-frozen",
            initial_memory=initial_memory,
            step_mode=self.step_mode,
            # choice needs a label set: other tasks answer free (``free_answers`` warns)
            answer_mode=self.answer_mode if isinstance(task, ClassificationTask) else "free",
            rewrite_mode=self.rewrite_mode,
            prompt_order=self.prompt_order,
            structured=self.structured,
            timeout=self.request_timeout,
            retries=self.max_attempts,
            max_new_tokens=self.max_new_tokens,
        )

    def unit_key(
        self,
        task: Task,
        method: str,
        observations: list[Observation],
        initial_memory: str | None = None,
    ) -> str:
        """Return the key of one (task, method, sequence) unit's steps in the state database.

        Derived, not listed: it hashes every option but ``NOT_RESULTS`` and
        ``SELECTION``, the method's whole run context (``core.identity``: the
        task's definition with its labels and prompts, each role's model and
        endpoint, sampling, budget...) and the sequence's data. Evals with other
        settings, or a data file edited in place, never reuse each other's
        steps, while an identical eval (a resume, another shard or process)
        finds them. A transfer method's key holds its trained memory's hash (in
        its context): another training never reuses its steps.
        """
        ctx = self.context(task, method, initial_memory)
        options = {k: v for k, v in self.identity().items() if k not in SELECTION}
        unit = {"options": options, "context": settings_of(ctx, ctx.budget), "data": observations}
        if method in BASELINES:  # their prompts are their own
            unit["baseline_prompts"] = prompts_digest(task, baselines)
        return digest(unit)

    def state_db(self) -> str:
        """Return the evaluation's state database (``OUT/state.db`` by default)."""
        return self.db or str(Path(self.out) / STATE_DB)
