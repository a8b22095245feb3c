"""Integration fixtures: the real embedded model and real loopback servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.serving import served_model_dir, transformers_serve


@pytest.fixture(scope="session")
def served_dir() -> Path:
    return served_model_dir()


@pytest.fixture(scope="session")
def served_url(served_dir: Path) -> Iterator[str]:
    with transformers_serve(served_dir) as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium, installed here when missing."""
    import shutil

    from tests.integration.debian import apt_install

    if shutil.which("chromium") is None:
        apt_install("chromium")
    path = shutil.which("chromium")
    assert path, "chromium is missing and could not be installed (needs root and apt-get)"
    return path
