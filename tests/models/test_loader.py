"""The one model loader (``asr_kd.models.load_model``) and its pairing checks (issue 14.2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr_kd.features.fbank import FbankConfig
from asr_kd.models import load_model
from asr_kd.utils.array_store import ArrayStoreWriter
from asr_kd.utils.errors import AsrKdError
from tests.models.test_model_files import FBANK, saved, tiny_model


def feature_dir(root: Path, dim: int = 4, fbank: dict | None = None) -> Path:
    """A minimal feature directory: one shard, utt2spk, CMVN statistics."""
    from asr_kd.features.cmvn import Cmvn
    from asr_kd.features.extract import CMVN_FILE, UTT2SPK
    from asr_kd.utils.array_store import ArrayStore

    fbank = fbank or FbankConfig(num_mel_bins=dim).to_dict()
    rng = np.random.default_rng(0)
    ArrayStoreWriter(root, "float32", (dim,), {"kind": "fbank", "fbank": fbank}).write_shard(
        0, [(f"1-2-{i}", rng.normal(size=(20, dim))) for i in range(3)])
    (root / UTT2SPK).write_text("".join(f"1-2-{i}\t1\n" for i in range(3)))
    Cmvn.from_store(ArrayStore(root), {f"1-2-{i}": "1" for i in range(3)}).save(root / CMVN_FILE)
    return root


def test_loader_opens_matching_features_with_the_models_cmvn_mode(tmp_path: Path) -> None:
    loaded = load_model(saved(tmp_path / "m.pt", cmvn_mode="global"))
    features = loaded.open_features(feature_dir(tmp_path / "feats"))
    assert features.cmvn_mode == "global" and loaded.temperature == 1.0 and loaded.num_senones == 5


def test_loader_names_both_fbank_settings(tmp_path: Path) -> None:
    loaded = load_model(saved(tmp_path / "m.pt"))
    other = dict(FBANK, frame_shift_ms=15.0, low_freq=40.0)
    feats = feature_dir(tmp_path / "feats", fbank=other)
    with pytest.raises(AsrKdError, match=rf"{feats}: features computed with frame_shift_ms=15.0, low_freq=40.0, but "
                                         rf".*m.pt was trained on frame_shift_ms=10.0, low_freq=20.0"):
        loaded.open_features(feats)


def test_loader_checks_feature_dimension_and_cmvn_mode(tmp_path: Path) -> None:
    loaded = load_model(saved(tmp_path / "m.pt", fbank={}))  # a file recording no fbank settings
    with pytest.raises(AsrKdError, match="6-dimensional features, but .*m.pt takes 4-dimensional input"):
        loaded.open_features(feature_dir(tmp_path / "f6", dim=6))
    with pytest.raises(AsrKdError, match="trained with CMVN mode 'speaker' but .* uses 'none'"):
        loaded.check_features(feature_dir(tmp_path / "f4"), cmvn_mode="none")


def test_loader_checks_senones_of_targets_and_trees(tmp_path: Path) -> None:
    from asr_kd.alignment import SenoneTree

    loaded = load_model(saved(tmp_path / "m.pt"))
    writer = ArrayStoreWriter(tmp_path / "ali", "int32", (), {"num_senones": 7})
    writer.write_shard(0, [("u", np.zeros(3, dtype=np.int32))])
    with pytest.raises(AsrKdError, match=r"ali: 7 senones \(alignment\), but .*m.pt has 5: they come from"):
        loaded.check_targets(tmp_path / "ali")
    SenoneTree.monophone().save(tmp_path / "tree" / "tree.json")
    with pytest.raises(AsrKdError, match=r"tree.json: 123 senones \(tree\), but .*m.pt has 5"):
        loaded.check_tree(tmp_path / "tree")


def test_loader_makes_ensembles(tmp_path: Path) -> None:
    from asr_kd.models import Ensemble, save_ensemble

    a = saved(tmp_path / "a.pt")
    b = saved(tmp_path / "b.pt", tiny_model())
    pair = load_model([a, b], temperature=2.0)
    assert isinstance(pair.model, Ensemble) and pair.model.temperature == 2.0 and pair.temperature == 1.0
    one = load_model(a, ensemble=True, combine="geometric")
    assert isinstance(one.model, Ensemble) and one.model.combine == "geometric" and len(one.model.members) == 1
    save_ensemble(tmp_path / "e.json", [a, b], temperature=3.0)
    assert load_model(tmp_path / "e.json").model.temperature == 3.0
    assert load_model(a, temperature=2.0).temperature == 2.0
