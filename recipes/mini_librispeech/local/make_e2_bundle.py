"""Pack what E2 (stage 8) needs into a small folder for another machine (< 64 MB).

The 3% utterance lists are the ones stage 8 trains on (``data.train_fraction=0.03``,
``data.subset_seed=s``); only those utterances' features and alignments are copied, dev
features as float16. Used to run E2 on a 16-core machine with ``e2_bundle_run.sh`` while the
2-core machine trained E1; the table in the README says which rows came from there.

Usage: python recipes/mini_librispeech/local/make_e2_bundle.py EXP OUT_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from asr_kd.training.config import DataConfig
from asr_kd.training.data import training_utterances
from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter

SEEDS = (0, 1, 2)


def copy_store(src: Path, dst: Path, utt_ids, dtype=None) -> None:
    store = ArrayStore(src)
    writer = ArrayStoreWriter(dst, dtype or store.dtype, store.trailing_shape, store.meta)
    writer.write_shard(0, [(u, np.asarray(store[u])) for u in sorted(utt_ids)])


def main(exp: Path, out: Path) -> None:
    (out / "lists").mkdir(parents=True)
    chosen: set[str] = set()
    for seed in SEEDS:
        ids = training_utterances(DataConfig(exp=str(exp), train_fraction=0.03, subset_seed=seed))
        (out / "lists" / f"seed{seed}.txt").write_text("".join(u + "\n" for u in ids))
        chosen |= set(ids)
    for subset, ids, dtype in (("train-clean-5", chosen, None), ("dev-clean-2", None, "float16")):
        feats = exp / "feats" / subset
        ids = ids if ids is not None else ArrayStore(feats).keys()
        copy_store(feats, out / "exp" / "feats" / subset, ids, dtype)
        for name in ("utt2spk.tsv", "cmvn.npz"):
            shutil.copy(feats / name, out / "exp" / "feats" / subset / name)
        for kind in ("senones", "phones"):
            copy_store(exp / "ali" / subset / kind, out / "exp" / "ali" / subset / kind, ids)
    (out / "exp" / "tree").mkdir(parents=True)
    for name in ("tree.json", "senone_counts.npy"):
        shutil.copy(exp / "tree" / name, out / "exp" / "tree" / name)
    shutil.copy(exp / "e1" / "ensemble" / "member0" / "model.pt", out / "member0.pt")
    shutil.copy(Path(__file__).with_name("e2_bundle_run.sh"), out / "run_e2.sh")
    print(f"make_e2_bundle: {len(chosen)} training utterances for seeds {SEEDS} -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
