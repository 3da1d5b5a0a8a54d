"""Forced alignment speed: x real time per core (goal >= 20x).

Trains a small aligner on the tiny train set (``asr-kd tree`` with few iterations and
Gaussians: seconds), then times :func:`align_subset` of the tiny dev set in this process with
one worker, i.e. the final-pass alignment that ``asr-kd align`` runs. Figures:

* ``x_realtime_per_core``: seconds of audio aligned per CPU-second of the aligning worker
  (the aligner's own accounting, so load from other processes does not lower it much).
* ``x_realtime_wall``: audio seconds per wall second of the whole :func:`align_subset` call
  (includes loading features and models and writing the outputs).
* ``tree_train_s``: wall time of the small ``asr-kd tree`` run (not a goal, a cost hint).

``--from-exp EXP --subset SUBSET`` instead aligns a subset of an experiment whose aligner is
already trained (e.g. the full-size one of ``asr-kd tree`` with default settings), in a
temporary experiment dir that links EXP's inputs (EXP itself is not written to).

Peak RSS comes from ``benchmarks.run`` (whole process: tree training + alignment).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import DEV, TINY_TREE_ARGS, TRAIN, emit, tiny_exp


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from-exp", type=Path, help="experiment with a trained aligner (<exp>/tree)")
    parser.add_argument("--subset", default=DEV)
    args = parser.parse_args(argv)

    from asr_kd.alignment.train import align_subset
    from asr_kd.cli import main as asr_kd

    tree_s = None
    if args.from_exp is None:
        exp = tiny_exp((TRAIN, DEV))
        start = time.perf_counter()
        asr_kd(["tree", "--exp", str(exp), "--subset", TRAIN, *TINY_TREE_ARGS])
        tree_s = round(time.perf_counter() - start, 1)
    else:
        exp = Path(tempfile.mkdtemp(prefix="asr_kd_bench_"))
        for name in ("manifests", "lang", "feats", "tree"):
            (exp / name).symlink_to((args.from_exp / name).resolve())
    start = time.perf_counter()
    summary = align_subset(exp, args.subset, jobs=1, progress=False)
    wall = time.perf_counter() - start
    audio = summary["audio_hours"] * 3600
    return {
        "stage": "align",
        "subset": args.subset,
        "audio_s": round(audio, 1),
        "aligned": summary["aligned"],
        "skipped": summary["skipped"],
        "x_realtime_per_core": round(summary["x_realtime_per_core"], 1),
        "x_realtime_wall": round(audio / wall, 1),
        "goal": ">= 20x",
        "tree_train_s": tree_s,
    }


if __name__ == "__main__":
    emit(main())
