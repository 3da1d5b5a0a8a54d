"""Small saved models (DNN and conformer) and a senone tree dir for the export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

TRAIN, DEV = "train-clean-5", "dev-clean-2"


@pytest.fixture(scope="session")
def tree_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A monophone senone tree with random frame counts (contract A files)."""
    from asr_kd.alignment import SenoneTree

    out = tmp_path_factory.mktemp("tree")
    SenoneTree.monophone().save(out / "tree.json")
    tree = SenoneTree.load(out / "tree.json")
    np.save(out / "senone_counts.npy", np.random.default_rng(0).integers(0, 500, tree.num_senones))
    return out


@pytest.fixture(scope="session", params=["dnn", "conformer"])
def saved_model(request: pytest.FixtureRequest, tiny_exp: Path, tree_dir: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model file with the metadata the trainer writes, plus its config.yaml."""
    import yaml

    from asr_kd.alignment import SenoneTree
    from asr_kd.models import build, save
    from asr_kd.utils.array_store import ArrayStore

    torch.manual_seed(0)
    num_senones = SenoneTree.load(tree_dir / "tree.json").num_senones
    model = build(request.param, "tiny", input_dim=40, num_senones=num_senones)
    out = tmp_path_factory.mktemp(f"model_{request.param}")
    fbank = ArrayStore(tiny_exp / "feats" / TRAIN).meta["fbank"]
    save(out / "model.pt", model, {"feature": {"fbank": fbank, "cmvn_mode": "speaker"}})
    (out / "config.yaml").write_text(yaml.safe_dump({"data": {"exp": str(tiny_exp), "train_subset": TRAIN}}))
    return out / "model.pt"


@pytest.fixture(scope="session")
def dev_batch(tiny_exp: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Three real dev utterances, speaker-CMVN normalised, as a padded batch ``(3, T, 40)``."""
    from asr_kd.features.dataset import FeatureSet, UtteranceDataset, collate_utterances

    features = FeatureSet(tiny_exp / "feats" / DEV, "speaker")
    dataset = UtteranceDataset(features, features.utt_ids()[:3])
    batch = collate_utterances([dataset[i] for i in range(3)])
    return batch["feats"], batch["lengths"]
