"""What an evaluation runs: its options, validated, and each method's run context."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from llm_as_rnn.core.context import Context, make_context
from llm_as_rnn.core.identity import PROMPTS_VERSION, digest
from llm_as_rnn.core.state import Observation
from llm_as_rnn.errors import ConfigError
from llm_as_rnn.tasks import Task

METHODS = ("zero-shot", "fhc", "memprompt", "rnn", "rnn-judge")
"""Every method an evaluation compares."""
BASELINES = ("zero-shot", "fhc", "memprompt")
"""The methods that do not run the graph."""


@dataclass
class EvalConfig:
    """Everything an evaluation run needs."""

    out: str
    model: str = "embedded"
    tasks: list[str] = field(default_factory=lambda: ["weather"])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    sequences: int = 2
    steps: int = 5
    seed: int = 0
    budget: int = 4096
    concurrency: int = 4
    context_window: int = 8192
    max_new_tokens: int | None = None
    base_url: str | None = None
    data: str | None = None
    task_type: Literal["classification", "regression"] | None = None
    labels: list[str] | None = None
    mimic_dir: str | None = None
    step_mode: str = "three-call"
    request_timeout: float = 60.0
    max_attempts: int = 4
    db: str | None = None
    """State database; default ``OUT/state.db``. A PostgreSQL URL lets workers share it."""
    shard: tuple[int, int] | None = None
    """``(i, n)``: this worker runs the k-th (task, method, sequence) when ``k % n == i``."""
    workers: int = 1
    """Worker processes on this machine, each a shard ``i/workers`` sharing the database."""

    def identity(self) -> dict[str, Any]:
        """Return what determines the results (not where they go, nor how patiently)."""
        fields = asdict(self)
        for name in (
            "out",
            "concurrency",
            "request_timeout",
            "max_attempts",
            "db",
            "shard",
            "workers",
        ):
            fields.pop(name)
        return fields

    def validate(self) -> None:
        """Raise ``ConfigError`` on a bad combination of options."""
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown method {unknown[0]!r}: choose from {', '.join(METHODS)}")
        if not self.methods:
            raise ConfigError("no --methods given")
        for name, value in (
            ("--sequences", self.sequences),
            ("--steps", self.steps),
            ("--concurrency", self.concurrency),
            ("--budget", self.budget),
            ("--workers", self.workers),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if self.data and self.task_type and self.tasks:
            raise ConfigError("--data takes --task-type or --tasks NAME, not both")
        if self.data and not self.task_type and len(self.tasks) != 1:
            raise ConfigError(
                "--data needs --tasks NAME (one task that reads the file) or "
                "--task-type classification|regression"
            )
        if not self.data and not self.tasks:
            raise ConfigError("no --tasks given")
        if self.workers > 1 and self.shard is not None:
            raise ConfigError("--workers and --shard do not mix: give one of them")

    def context(self, task: Task, method: str) -> Context:
        """Return the run context of one method."""
        return make_context(
            task=task,
            model=self.model,
            base_url=self.base_url,
            budget=self.budget,
            seed=self.seed,
            feedback="judge" if method == "rnn-judge" else "supervised",
            step_mode=self.step_mode,
            timeout=self.request_timeout,
            retries=self.max_attempts,
            max_new_tokens=self.max_new_tokens,
        )

    def sequence_key(self, task: str, observations: list[Observation]) -> str:
        """Return the key of one sequence's steps in the state database.

        It hashes what a method's results on that sequence depend on (model,
        budget, seed, token cap, step mode, context window, prompts version,
        the task and the sequence's data), so evals with other settings, or a
        data file edited in place, never reuse each other's steps, while an
        identical eval (a resume, another shard) finds them.
        """
        return digest(
            {
                "model": self.model,
                "budget": self.budget,
                "seed": self.seed,
                "max_new_tokens": self.max_new_tokens,
                "step_mode": self.step_mode,
                "context_window": self.context_window,
                "prompts": PROMPTS_VERSION,
                "task": task,
                "data": observations,
            }
        )

    def state_db(self) -> str:
        """Return the evaluation's state database (``OUT/state.db`` by default)."""
        return self.db or str(Path(self.out) / "state.db")
