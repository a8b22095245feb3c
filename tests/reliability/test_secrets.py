"""Credentials, however given, are used and never written anywhere: redaction by value.

Each channel plants its own value: ``--api-key VALUE``, ``--api-key=VALUE``,
``OPENAI_API_KEY``, a password in ``--base-url``, in ``OPENAI_BASE_URL`` and in
a ``postgresql://`` ``--db``, and an abbreviated flag (``--api``). The runs
cover ``run`` (with ``--json``), ``eval``, a request whose error quotes the
credentials back, an unreachable URL, and ``trace`` (list, terminal, HTML).
Then every file under the test's folder (databases and WAL files included,
read as bytes) and everything printed is searched for every planted value.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from tests.integration.serving import free_port
from tests.reliability.harness import CLI, REPO, fault_server, record, run_args

PLANTED = {
    "flag": "sk-planted-FLAG-7Q2x9Lm4Vd",
    "equals": "sk-planted-EQUALS-3Vb8Nw1K",
    "env": "sk-planted-ENV-6Hd2Rt5ZcQ",
    "url": "pw-planted-URL-4Jk7Ws2Xe",
    "env_url": "pw-planted-ENVURL-9Fg3QaL",
    "db": "pw-planted-DB-2Mn5Tb8Yu",
    "abbreviated": "sk-planted-ABBREV-1Ce4Ui7",
}


def with_password(url: str, password: str) -> str:
    """Return ``url`` with ``bob:password@`` credentials."""
    return url.replace("http://", f"http://bob:{password}@", 1)


def basic(password: str) -> str:
    """Return the Authorization header a URL's ``bob:password`` credentials become."""
    return "Basic " + base64.b64encode(f"bob:{password}".encode()).decode()


def eval_args(out: Path, *extra: str) -> list[str]:
    return [
        *CLI,
        "eval",
        "--tasks",
        "weather",
        "--methods",
        "zero-shot,rnn",
        "--sequences",
        "1",
        "--steps",
        "2",
        "--model",
        "openai:fault-model",
        "--timeout",
        "1",
        "--out",
        str(out),
        *extra,
    ]


def test_credentials_are_used_and_never_written(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    printed: list[str] = []
    unexpected: list[str] = []  # checked after the leaks, so a failure shows both
    runs = 0

    def cli(args: list[str], code: int, **env: str) -> str:
        nonlocal runs
        done = subprocess.run(
            args, capture_output=True, text=True, env={**clean, **env}, cwd=REPO, timeout=180
        )
        printed.extend((done.stdout, done.stderr))
        runs += 1
        if done.returncode != code:
            unexpected.append(f"run {runs} ({args[3]}): exit {done.returncode}: {done.stderr}")
        return done.stderr

    db = tmp_path / "s.db"
    dead = f"http://127.0.0.1:{free_port()}/v1"
    failing_options = {"fault_rate": 1, "faults": "500", "max_faults_per_request": 100}
    with (
        fault_server(seed=8) as server,
        fault_server(seed=8, echo_credentials=True, **failing_options) as failing,
    ):
        # An abbreviation is refused before anything is sent.
        cli(eval_args(tmp_path / "a", "--base-url", server.url, "--api", PLANTED["abbreviated"]), 2)
        abbreviated = with_password(server.url, PLANTED["abbreviated"])
        cli([*CLI, "run", "--model", "openai:x", "--db", str(db), "--base", abbreviated], 2)
        # The key by flag, then as --flag=value, then from the environment.
        cli([*run_args(server.url, db, "s", 3), "--api-key", PLANTED["flag"]], 0)
        cli(
            eval_args(tmp_path / "e1", f"--api-key={PLANTED['equals']}", "--base-url", server.url),
            0,
        )
        cli(eval_args(tmp_path / "e2", "--base-url", server.url), 0, OPENAI_API_KEY=PLANTED["env"])
        # Credentials in a URL, by flag and by variable.
        with_url = with_password(server.url, PLANTED["url"])
        cli(eval_args(tmp_path / "e3", "--base-url", with_url), 0)
        cli(run_args(with_url, db, "u", 2), 0)
        env_url = with_password(server.url, PLANTED["env_url"])
        cli(eval_args(tmp_path / "e4", "--workers", "2"), 0, OPENAI_BASE_URL=env_url)
        seen = server.stats()["bearer"]
        # An error that quotes the key back, an unreachable URL, an unreachable database.
        failed = cli(
            [*run_args(failing.url, tmp_path / "f.db", "f", 1), "--retries", "1"],
            1,
            OPENAI_API_KEY=PLANTED["env"],
        )
        cli(run_args(with_password(dead, PLANTED["url"]), tmp_path / "d.db", "d", 1), 2)
        postgres = f"postgresql://bob:{PLANTED['db']}@127.0.0.1:{free_port()}/x"
        cli([*CLI, "eval", "--model", "fake", "--out", str(tmp_path / "p"), "--db", postgres], 2)
    # What the database holds, shown every way.
    cli([*CLI, "trace", "--db", str(db)], 0)
    cli([*CLI, "trace", "--db", str(db), "--thread", "s"], 0)
    cli([*CLI, "trace", "--db", str(db), "--thread", "u", "--html", str(tmp_path / "u.html")], 0)

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    leaks = [
        f"{p.relative_to(tmp_path)}: {name}"
        for p in files
        for name, value in PLANTED.items()
        if value.encode() in p.read_bytes()
    ]
    leaks += [f"output: {name}" for text in printed for name, v in PLANTED.items() if v in text]
    record(
        "secrets",
        runs=runs,
        survived=runs - len(unexpected),
        files_checked=len(files),
        leaks=len(leaks),
    )
    assert not leaks, "\n".join(leaks)
    assert not unexpected, "\n".join(unexpected)
    # Every credential really was used (the server notes Bearer keys without "Bearer ").
    used = {PLANTED[name] for name in ("flag", "equals", "env")}
    used |= {basic(PLANTED["url"]), basic(PLANTED["env_url"])}
    assert used <= set(seen)
    assert "injected 500 for Bearer REDACTED" in failed  # the error line, its key hidden
    assert "--api-key=REDACTED" in (tmp_path / "e1" / "report.md").read_text()
    assert "http://REDACTED@127.0.0.1" in (tmp_path / "e3" / "report.md").read_text()
