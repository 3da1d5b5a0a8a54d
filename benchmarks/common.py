"""Helpers shared by the benchmarks: timing, the machine's matmul ceiling, result printing.

Every benchmark module has ``main(args) -> dict`` returning flat figures; ``benchmarks.run``
runs each in its own process (so its peak RSS is its own) and prints one table.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: The tiny LibriSpeech-layout data shipped in the repository (20 train + 10 dev utterances).
TINY_ROOT = Path(__file__).resolve().parents[1] / "data" / "LibriSpeech"
TRAIN, DEV = "train-clean-5", "dev-clean-2"
#: An aligner that trains in seconds on the 20 tiny utterances (the settings of tests/alignment).
TINY_TREE_ARGS = ["--num-senones", "150", "--mono-iters", "2", "--mono-gaussians", "150", "--tri-iters", "2",
                  "--tri-gaussians", "250", "--min-leaf-frames", "50", "--jobs", "1"]


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


def tiny_exp(subsets: Sequence[str] = (TRAIN,), tree: bool = False) -> Path:
    """A new temporary experiment dir with the tiny data's manifests, lexicon and features.

    With ``tree``, also ``asr-kd tree`` on :data:`TRAIN` (``TINY_TREE_ARGS``: seconds), so the
    dir has ``tree/`` and ``ali/train-clean-5``.
    """
    from asr_kd.cli import main as asr_kd

    exp = Path(tempfile.mkdtemp(prefix="asr_kd_bench_"))
    asr_kd(["prepare", "--root", str(TINY_ROOT), "--subsets", *subsets, "--exp", str(exp)])
    asr_kd(["features", "--exp", str(exp), "--subsets", *subsets, "--jobs", "1"])
    if tree:
        asr_kd(["tree", "--exp", str(exp), "--subset", TRAIN, *TINY_TREE_ARGS])
    return exp


def random_target_table(exp: Path, num_senones: int, subset: str = TRAIN):
    """:class:`FrameTable` of ``<exp>/feats/<subset>`` with uniform random targets (for throughput only)."""
    import numpy as np

    from asr_kd.features.dataset import FeatureSet, FrameTable
    from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter

    features = FeatureSet(exp / "feats" / subset)
    rng = np.random.default_rng(0)
    writer = ArrayStoreWriter(exp / "random_targets" / subset, "int32", ())
    writer.write_shard(0, [(u, rng.integers(0, num_senones, len(features.store[u]))) for u in features.utt_ids()])
    return FrameTable(features, targets=ArrayStore(exp / "random_targets" / subset))


def emit(result: dict) -> None:
    """Print a benchmark's result as the last stdout line (read by ``benchmarks.run``)."""
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
