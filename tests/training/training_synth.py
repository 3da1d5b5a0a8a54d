"""A synthetic experiment directory for the training tests: features, CMVN and frame targets with a
learnable rule, a validation split, and a few-second training config (imported by conftest.py and tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asr_kd.features.cmvn import Cmvn
from asr_kd.features.extract import CMVN_FILE, UTT2SPK, read_utt2spk
from asr_kd.features.fbank import FbankConfig
from asr_kd.training.config import ExperimentConfig
from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter

DIM, NUM_SENONES = 8, 5
TRAIN, DEV = "train-clean-5", "dev-clean-2"


def write_subset(exp: Path, subset: str, num_utts: int, seed: int) -> None:
    """Smoothed Gaussian features; the target of a frame is the argmax of its first 5 dims
    one frame in the past (so context helps); phone 0 (SIL) where the target is 0."""
    rng = np.random.default_rng(seed)
    feats_dir = exp / "feats" / subset
    fbank = FbankConfig(num_mel_bins=DIM).to_dict()
    feats = {}
    for i in range(num_utts):
        x = rng.normal(size=(int(rng.integers(30, 60)), DIM)).astype(np.float32)
        x[1:] += 0.5 * x[:-1]
        feats[f"{1000 + i % 3}-{subset[:3]}-{i:04d}"] = x * 2 + 1
    ArrayStoreWriter(feats_dir, "float32", (DIM,), {"kind": "fbank", "fbank": fbank}).write_shard(0, feats.items())
    (feats_dir / UTT2SPK).write_text("".join(f"{u}\t{u.split('-')[0]}\n" for u in feats))
    Cmvn.from_store(ArrayStore(feats_dir), read_utt2spk(feats_dir)).save(feats_dir / CMVN_FILE)
    senones = {}
    for u, x in feats.items():
        shifted = np.concatenate([x[:1], x[:-1]])
        senones[u] = shifted[:, :NUM_SENONES].argmax(1).astype(np.int32)
    ali = exp / "ali" / subset
    ArrayStoreWriter(ali / "senones", "int32").write_shard(0, senones.items())
    phones = {u: np.where(s == 0, 0, 5).astype(np.int32) for u, s in senones.items()}
    ArrayStoreWriter(ali / "phones", "int32").write_shard(0, phones.items())


def write_validation_split(exp: Path, subset: str, every: int = 4) -> list[str]:
    """Hold out every ``every``-th utterance of ``subset`` as ``<exp>/splits/<subset>/valid.txt`` (the
    trainer's default validation list); returns the held-out ids."""
    ids = sorted(ArrayStore(exp / "feats" / subset))
    valid = ids[::every]
    out = exp / "splits" / subset
    out.mkdir(parents=True, exist_ok=True)
    (out / "valid.txt").write_text("".join(u + "\n" for u in valid))
    return valid


def tiny_config(exp: Path, out_dir: Path, arch: str = "dnn", **train) -> ExperimentConfig:
    return ExperimentConfig.from_dict({
        "out_dir": str(out_dir),
        "data": {"exp": str(exp), "train_subset": TRAIN},
        "model": {"arch": arch, "preset": "tiny", "num_senones": NUM_SENONES},
        "optim": {"lr": 0.01 if arch == "dnn" else 0.003},
        "train": {"epochs": 3, "batch_size": 64, "max_frames": 400, "patience": 0, "checkpoint_every": 5, "threads": 1,
                  "progress": False, **train},
    })
