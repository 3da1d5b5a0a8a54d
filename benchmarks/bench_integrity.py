"""Cost of the integrity checks: the model file checksum on load, the finiteness check per shard.

* ``load_*``: ``asr_kd.models.load`` of a DNN file (``mini`` and ``paper`` presets by default)
  and the part of it spent in the SHA-256 of weights + metadata (``checksum_*``) and in the
  NaN/Inf check of the weights; ``checksum_fraction_*`` = checksum / whole load.
* ``shard_*``: reading every utterance of a feature shard of ``--utts`` utterances of
  ``--frames`` frames x 40 float32 (LibriSpeech's mean utterance is ~12 s = 1230 frames)
  through a new ``ArrayStore`` (memory-mapped, from the page cache), with the finiteness check
  of its first read (``shard_first_read_ms``) and with the check left out
  (``shard_read_unchecked_ms``), and the check alone (``finite_check_ms``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import best_time, emit


def _model_figures(preset: str, num_senones: int, tmp: Path, repeats: int) -> dict:
    import torch

    from asr_kd.models import build, load, save
    from asr_kd.models.io import non_finite_weights, read_payload, weights_digest

    torch.manual_seed(0)
    model = build("dnn", preset, input_dim=40, num_senones=num_senones)
    path = tmp / f"{preset}.pt"
    save(path, model, {"feature": {"fbank": {}, "cmvn_mode": "speaker"}})
    payload = read_payload(path)
    state, meta = payload["state_dict"], payload["metadata"]
    load_s = best_time(lambda: load(path), repeats=repeats)
    checksum_s = best_time(lambda: weights_digest(state, meta), repeats=repeats)
    finite_s = best_time(lambda: non_finite_weights(state), repeats=repeats)
    params = sum(t.numel() for t in state.values())
    return {f"params_{preset}": params, f"file_mb_{preset}": round(path.stat().st_size / 1e6, 1),
            f"load_ms_{preset}": round(1000 * load_s, 2), f"checksum_ms_{preset}": round(1000 * checksum_s, 2),
            f"finite_weights_ms_{preset}": round(1000 * finite_s, 2),
            f"checksum_fraction_{preset}": round(checksum_s / load_s, 3)}


def _shard_figures(utts: int, frames: int, tmp: Path, repeats: int) -> dict:
    import numpy as np

    from asr_kd.utils import array_store
    from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter, all_finite

    rng = np.random.default_rng(0)
    root = tmp / "feats"
    ArrayStoreWriter(root, "float32", (40,)).write_shard(
        0, [(f"u{i}", rng.normal(size=(frames, 40)).astype(np.float32)) for i in range(utts)])

    def read_all() -> float:  # every byte of every utterance, as FrameTable / CMVN statistics read them
        store = ArrayStore(root)
        return sum(float(np.asarray(store[u]).sum()) for u in store)

    with_check = best_time(read_all, repeats=repeats)
    original = array_store.all_finite
    array_store.all_finite = lambda array, block_rows=0: True  # the same read without the check
    try:
        without_check = best_time(read_all, repeats=repeats)
    finally:
        array_store.all_finite = original
    shard = np.load(root / "shard-00000.npy", mmap_mode="r")
    check_s = best_time(lambda: all_finite(shard), repeats=repeats)
    return {"shard_mb": round(shard.nbytes / 1e6, 1), "shard_first_read_ms": round(1000 * with_check, 2),
            "shard_read_unchecked_ms": round(1000 * without_check, 2), "finite_check_ms": round(1000 * check_s, 2),
            "finite_check_gb_per_s": round(shard.nbytes / check_s / 1e9, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["mini", "paper"], help="DNN presets to save and load")
    parser.add_argument("--num-senones", type=int, default=1000)
    parser.add_argument("--utts", type=int, default=100, help="utterances per feature shard")
    parser.add_argument("--frames", type=int, default=1230, help="frames per utterance")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    result: dict = {"stage": "integrity"}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            result.update(_model_figures(preset, args.num_senones, Path(tmp), args.repeats))
        result.update(_shard_figures(args.utts, args.frames, Path(tmp), args.repeats))
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


if __name__ == "__main__":
    emit(main())
