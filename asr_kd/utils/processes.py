"""Process pools whose workers die with their parent.

A ``ProcessPoolExecutor`` worker whose parent is killed with ``kill -9`` is not told: it keeps
its memory (hundreds of MB of features or models) and finishes its queue as an orphan. Every
pool of the toolkit is made by :func:`worker_pool`, whose workers

* ask Linux to send them SIGKILL when their parent dies (``prctl(PR_SET_PDEATHSIG)``, as
  Kaldi's and PyTorch's launchers do for their children), and
* elsewhere (no ``prctl``) run a watchdog thread that exits once the parent is gone.

Both check once at start-up that the parent is still the one that created the pool (it may
have died between the fork and the ``prctl`` call).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any

#: ``<linux/prctl.h>``: deliver a signal to this process when its parent thread exits.
PR_SET_PDEATHSIG = 1
#: Seconds between two parent checks of the watchdog thread (platforms without prctl).
WATCHDOG_PERIOD_S = 1.0


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this (worker) process exit when its parent dies; call it first in the worker.

    Args:
        parent_pid: the process that created the pool, if it is this worker's parent (not so
            for the ``forkserver`` start method, whose server is the parent and dies with ours).

    The Linux death signal fires when the *thread* that created the worker exits; pools are
    created and used from the caller's thread, which lives as long as the pool.
    """
    expected = os.getppid() if parent_pid is None else parent_pid
    if not (sys.platform.startswith("linux") and _set_parent_death_signal(signal.SIGKILL)):
        threading.Thread(target=_watch_parent, args=(expected,), daemon=True, name="asr_kd-parent-watch").start()
    if os.getppid() != expected:  # the parent died before the death signal was armed
        os._exit(1)


def _set_parent_death_signal(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(WATCHDOG_PERIOD_S):
        if os.getppid() != parent_pid:
            os._exit(1)


def _init_worker(parent_pid: int | None, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def worker_pool(max_workers: int, mp_context: BaseContext | str | None = None,
                initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``max_workers`` processes that die with this process.

    Args:
        mp_context: a multiprocessing context or start method name (``"fork"``, ``"spawn"``);
            default: the platform's.
        initializer, initargs: run in every worker after the parent-death set-up (must be
            picklable for the ``spawn`` method).
    """
    context = mp_context if isinstance(mp_context, BaseContext) else multiprocessing.get_context(mp_context)
    parent_pid = None if context.get_start_method() == "forkserver" else os.getpid()
    return ProcessPoolExecutor(max_workers, mp_context=context, initializer=_init_worker,
                               initargs=(parent_pid, initializer, initargs))
