"""Feature extraction speed: x real time per core (goal >= 200x).

Decodes FLAC and computes 40-dim Kaldi fbank for every utterance of a manifest (default: the
tiny data in data/, prepared on the fly) in one process with one torch thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=REPO / "data" / "LibriSpeech")
    parser.add_argument("--subset", default="train-clean-5")
    args = parser.parse_args(argv)

    import torch

    from asr_kd.data import scan_subset
    from asr_kd.features.extract import extract_features

    torch.set_num_threads(1)
    utts, _ = scan_subset(args.root, args.subset, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        cpu_start = time.process_time()
        summary = extract_features(utts, Path(tmp) / "feats", num_workers=1, progress=False)
        cpu = time.process_time() - cpu_start
    audio = sum(u.duration_s for u in utts)
    return {
        "stage": "features",
        "audio_s": round(audio, 1),
        "wall_s": round(summary.wall_seconds, 2),
        "x_realtime_per_core": round(audio / cpu, 1),
        "goal": ">= 200x",
    }


if __name__ == "__main__":
    emit(main())
