"""Helpers shared by the benchmarks: timing, the machine's matmul ceiling, result printing.

Every benchmark module has ``main(args) -> dict`` returning flat figures; ``benchmarks.run``
runs each in its own process (so its peak RSS is its own) and prints one table.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Minimum wall time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_flops(device: str = "cpu", size: int = 2048, dtype: str = "float32") -> float:
    """Achieved FLOP/s of a square matrix product: the machine's matmul-bound ceiling.

    Measured in the same process as the benchmark it normalises, so a ratio of the two is
    stable on a noisy machine even when the absolute numbers move.
    """
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(size, size, device=device, dtype=dt)
    b = torch.randn(size, size, device=device, dtype=dt)

    def product() -> None:
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()

    seconds = best_time(product, repeats=5, warmup=2)
    return 2 * size**3 / seconds


def emit(result: dict) -> None:
    """Print a benchmark's result as the last stdout line (read by ``benchmarks.run``)."""
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
