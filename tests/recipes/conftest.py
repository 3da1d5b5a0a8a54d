"""The recipe scripts' tests: each runs a script with an ``asr-kd`` that only logs its arguments."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RunLogged = Callable[..., tuple[subprocess.CompletedProcess, list[str]]]


@pytest.fixture
def run_logged(tmp_path: Path) -> RunLogged:
    """``run(script, *args)``: ``bash script *args`` from the repository root, with a fake ``asr-kd``
    first on PATH that appends its arguments to a log and writes nothing -> (the completed process,
    the ``asr-kd`` argument lines of this run, in order)."""
    bin_dir = tmp_path / "fake_bin"
    bin_dir.mkdir()
    log = tmp_path / "asr_kd_calls.txt"
    fake = bin_dir / "asr-kd"
    fake.write_text(f"#!/usr/bin/env bash\necho \"$*\" >> {log}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def run(script: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        log.unlink(missing_ok=True)
        result = subprocess.run(["bash", str(script), *args], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=60)
        return result, log.read_text().splitlines() if log.exists() else []

    return run
