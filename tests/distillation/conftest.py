"""Synthetic features and a tiny teacher for the distillation tests (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asr_kd.features.cmvn import Cmvn
from asr_kd.features.dataset import FeatureSet
from asr_kd.features.extract import CMVN_FILE, UTT2SPK
from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter

DIM, NUM_SENONES = 8, 24
# utterance id -> frames; two shards of 2 utterances with utts_per_shard=2 (plus one more)
LENGTHS = {"s1-a-0001": 17, "s1-a-0002": 5, "s2-b-0001": 23, "s2-b-0002": 9, "s3-c-0001": 12}


def write_feature_dir(root: Path, lengths: dict[str, int], seed: int = 0) -> Path:
    """A feature directory as ``asr-kd features`` writes it, with random (T, DIM) features."""
    rng = np.random.default_rng(seed)
    ArrayStoreWriter(root, "float32", (DIM,)).write_shard(
        0, [(u, rng.normal(size=(n, DIM)).astype(np.float32)) for u, n in lengths.items()]
    )
    utt2spk = {u: u.split("-")[0] for u in lengths}
    (root / UTT2SPK).write_text("".join(f"{u}\t{s}\n" for u, s in utt2spk.items()))
    Cmvn.from_store(ArrayStore(root), utt2spk).save(root / CMVN_FILE)
    return root


def write_targets(root: Path, lengths: dict[str, int], seed: int = 0) -> ArrayStore:
    """Random ``(T,)`` int32 senone targets (an alignment store, contract (B))."""
    rng = np.random.default_rng(seed)
    items = [(u, rng.integers(0, NUM_SENONES, n)) for u, n in lengths.items()]
    ArrayStoreWriter(root, "int32", ()).write_shard(0, items)
    return ArrayStore(root)


def write_exp(exp: Path, subsets: dict[str, dict[str, int]]) -> Path:
    """An experiment dir with ``feats/<subset>`` and ``ali/<subset>/senones`` for each subset."""
    for i, (subset, lengths) in enumerate(subsets.items()):
        write_feature_dir(exp / "feats" / subset, lengths, seed=i)
        write_targets(exp / "ali" / subset / "senones", lengths, seed=i)
    return exp


@pytest.fixture
def targets(tmp_path: Path) -> ArrayStore:
    return write_targets(tmp_path / "ali", LENGTHS)


@pytest.fixture
def tiny_exp_dir(tmp_path: Path) -> Path:
    """Synthetic train (the 5 utterances) and dev (2 utterances) subsets."""
    return write_exp(tmp_path / "exp", {"train": LENGTHS, "dev": {"s4-d-0001": 14, "s4-d-0002": 8}})


@pytest.fixture
def utt_lengths() -> dict[str, int]:
    return dict(LENGTHS)


@pytest.fixture
def make_feature_dir():
    """``make_feature_dir(root, lengths) -> root``: write a synthetic feature directory."""
    return write_feature_dir


@pytest.fixture
def make_exp():
    """``make_exp(exp, {subset: lengths}) -> exp``: write a synthetic experiment directory."""
    return write_exp


@pytest.fixture
def features(tmp_path: Path) -> FeatureSet:
    return FeatureSet(write_feature_dir(tmp_path / "feats", LENGTHS))


@pytest.fixture
def teacher() -> torch.nn.Module:
    from asr_kd.models import build

    torch.manual_seed(0)
    return build("dnn", "tiny", input_dim=DIM, num_senones=NUM_SENONES).eval()
