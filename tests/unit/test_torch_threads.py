"""PyTorch's thread count on the torch thread: LLM_AS_RNN_TORCH_THREADS, else from the load."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llm_as_rnn.errors import ConfigError
from llm_as_rnn.runtime import threads
from llm_as_rnn.runtime.threads import (
    THREADS_ENV,
    Threads,
    choose_threads,
    others_of,
    torch_threads,
)
from llm_as_rnn.testing import busy_loops


def test_the_load_decides_unless_the_variable_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert torch_threads() is None
    monkeypatch.setenv(THREADS_ENV, " ")
    assert torch_threads() is None
    monkeypatch.setenv(THREADS_ENV, "3")
    assert torch_threads() == 3


@pytest.mark.parametrize(
    ("cores", "others", "chosen"),
    [
        (2, 0, 2),  # quiet
        (2, 0.4, 2),  # a kernel thread seen now and then
        (2, 1, 1),  # one busy process
        (2, 2, 1),  # two busy loops: never below one
        (8, 3, 5),
    ],
)
def test_torch_gets_the_cores_the_others_leave(cores: int, others: float, chosen: int) -> None:
    assert choose_threads(cores, others) == chosen


def test_our_own_threads_are_not_others() -> None:
    assert others_of(3, 3) == 0  # our pool spinning after an operator
    assert others_of(3, 1) == 2
    assert others_of(1, 2) == 0


def test_a_lasting_load_decides_and_a_passing_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    others = iter([0, 1, 0, 0, 2, 2, 2, 2])
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads, "others_now", lambda: next(others))
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    keeper = Threads(None)
    chosen = [keeper.adapt() for _ in range(8)]
    # one other thread in one reading: still 2; two busy others from the fifth reading on
    assert chosen == [2, 2, 2, 2, 1, 1, 1, 1]


@pytest.mark.parametrize(
    ("readings", "others"),
    [
        ([(1, 1)], 0),  # only the reading thread: not read again
        ([(3, 2), (2, 2)], 0),  # one thread runnable for an instant: gone 3 ms later
        ([(4, 1), (4, 1)], 3),  # busy processes are runnable in both readings
        ([(4, 1), (2, 1)], 1),  # the fewer of the two
    ],
)
def test_others_are_those_runnable_in_two_readings_apart(
    monkeypatch: pytest.MonkeyPatch, readings: list[tuple[int, int]], others: int
) -> None:
    queue = iter(readings)
    monkeypatch.setattr(threads, "runnable_now", lambda: next(queue))
    assert threads.others_now() == others
    assert next(queue, None) is None  # every reading was taken, none more


def test_other_processes_busy_loops_are_counted_as_others_not_ours() -> None:
    busy = 2 * threads.cores()
    with busy_loops(busy):
        readings = [threads.runnable_now() for _ in range(5)]
    # the reading thread itself is ours; most of the spinning processes are others
    assert all(ours >= 1 for _, ours in readings), readings
    assert max(threads.others_of(*r) for r in readings) >= threads.cores(), readings


def test_a_fixed_count_ignores_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "runnable_now", lambda: (99, 1))
    assert Threads(2).adapt() == 2


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", "+3"])
def test_a_bad_count_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(THREADS_ENV, bad)
    with pytest.raises(ConfigError, match=f"{THREADS_ENV} must be a positive integer"):
        torch_threads()


SHOW = (
    "import torch\n"
    "from llm_as_rnn.runtime.local import torch_thread\n"
    "print(torch_thread().submit(torch.get_num_threads).result())\n"
)


def torch_thread_count(count: str) -> int:
    """Return the torch thread's PyTorch thread count in a new process with the variable."""
    out = subprocess.run(
        [sys.executable, "-c", SHOW],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, THREADS_ENV: count},
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


@pytest.mark.parametrize("count", ["1", "2"])
def test_the_torch_thread_runs_with_that_many_threads(count: str) -> None:
    assert torch_thread_count(count) == int(count)


def test_unset_the_torch_thread_leaves_busy_cores_alone() -> None:
    """Beside 2 busy processes a core (PyTorch's own default would take every core)."""
    with busy_loops(2 * threads.cores()):
        assert torch_thread_count("") == 1
