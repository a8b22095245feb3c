"""The HTML learning trace, rendered by headless Chromium."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.serving import CACHE

pytestmark = pytest.mark.integration

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def cli(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llm_as_rnn", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def dump_dom(chromium: str, profile: Path, page: Path) -> str:
    """Return the page's DOM as headless Chromium renders it."""
    dom = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout


def test_trace_page_in_chromium(tmp_path: Path, chromium: str) -> None:
    db, page = tmp_path / "t.db", tmp_path / "trace.html"
    cli(
        "run",
        "--model",
        "fake",
        "--steps",
        "5",
        "--budget",
        "200",
        "--db",
        str(db),
        "--thread",
        "seattle",
    )
    # a second thread whose rewrites are all cut at 20 tokens, so each is rejected
    cli("run", "--model", "fake", "--steps", "2", "--max-new-tokens", "20", "--db", str(db))
    cli("trace", "--db", str(db), "--thread", "seattle", "--html", str(page))
    profile = tmp_path / "profile"
    html = dump_dom(chromium, profile, page)
    assert html.count('<section class="step"') == 5
    for step in range(1, 6):
        assert f'id="step-{step}"' in html
    assert html.count('<table class="diff">') == 5
    assert 'id="plot-memory"' in html
    assert 'id="plot-correct"' in html
    assert html.count("data:image/png;base64,") == 2
    # the page opens with the settings: each role's model and sampling, then the rest
    assert html.index('id="settings"') < html.index('id="plot-memory"')
    for role in ("predictor", "critic", "rewriter"):
        assert f"<tr><td>{role}</td><td><b>fake: 0</b></td>" in html
    assert "<th>budget</th><td>200</td>" in html
    rejected = tmp_path / "rejected.html"
    cli("trace", "--db", str(db), "--thread", "weather-start0-supervised", "--html", str(rejected))
    shown = dump_dom(chromium, profile, rejected)
    folds = re.findall(
        r"<details class=\"rejected-text\"><summary>.*?</summary><pre>(.*?)</pre>", shown, re.S
    )
    assert len(folds) == 2
    assert all(f.startswith("[attempt 1, rejected: rewrite cut off") for f in folds)
    CACHE.mkdir(exist_ok=True)
    shot = CACHE / "trace-screenshot.png"
    shot.unlink(missing_ok=True)
    done = subprocess.run(
        [
            chromium,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
            "--window-size=1280,3600",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 50_000  # a real rendering, not a blank page
