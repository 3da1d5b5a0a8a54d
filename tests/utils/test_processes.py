"""Process pools of the toolkit: workers die with their parent (``kill -9`` leaves no orphans)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def is_alive(pid: int) -> bool:
    """Running (a zombie nobody reaps, as under a container's PID 1, counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def kill_and_check_workers_die(proc: subprocess.Popen, min_workers: int, timeout_s: float = 60.0) -> None:
    """Wait for ``proc`` to have ``min_workers`` children, ``kill -9`` it, assert the children die."""
    deadline = time.monotonic() + timeout_s
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = children_of(proc.pid)
        if len(workers) >= min_workers:
            break
        time.sleep(0.05)
    assert len(workers) >= min_workers, f"only {workers} worker processes appeared (exit {proc.poll()})"
    time.sleep(0.5)  # let the workers reach their initializer
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(is_alive(w) for w in workers):
        time.sleep(0.1)
    alive = [w for w in workers if is_alive(w)]
    for w in alive:  # do not leave them behind when the test fails
        os.kill(w, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their killed parent"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_die_with_their_parent(method: str) -> None:
    script = textwrap.dedent(f"""
        import time
        from asr_kd.utils.processes import worker_pool
        with worker_pool(2, {method!r}) as pool:
            list(pool.map(time.sleep, [60, 60]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    kill_and_check_workers_die(proc, 2)


def test_every_process_pool_is_a_worker_pool() -> None:
    """No module creates a pool whose workers could outlive it (features, alignment, training, data ...)."""
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "asr_kd").rglob("*.py")
                 if p.name != "processes.py" and ("ProcessPoolExecutor(" in p.read_text()
                                                  or "multiprocessing.Pool(" in p.read_text())]
    assert offenders == []
