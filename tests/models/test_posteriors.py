"""``write_log_posteriors``: a store of one model's log-posteriors is never reused for another."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from asr_kd.models import load_model
from asr_kd.models.io import build
from asr_kd.models.posteriors import write_log_posteriors
from asr_kd.utils.array_store import ArrayStore
from tests.models.test_loader import feature_dir
from tests.models.test_model_files import saved


def _posteriors(model_path: Path, feats: Path, out: Path, utt_ids: list[str] | None = None) -> tuple[int, int]:
    loaded = load_model(model_path)
    features = loaded.open_features(feats)
    return write_log_posteriors(loaded.model, loaded.metadata, features, out, "float32", utt_ids=utt_ids,
                                utts_per_shard=2, model_digest=loaded.digest())


def test_a_model_retrained_at_the_same_path_gets_its_posteriors_redone(tmp_path: Path) -> None:
    feats, out, model = feature_dir(tmp_path / "feats"), tmp_path / "post", tmp_path / "m.pt"
    saved(model)
    assert _posteriors(model, feats, out) == (2, 0)  # 3 utterances, 2 per shard
    written = os.stat(out).st_mtime_ns
    time.sleep(0.02)  # past the file system's timestamp tick
    assert _posteriors(model, feats, out) == (0, 2)  # the same model: resumable, nothing redone
    # ... and the store's mtime kept: the recipe redoes what is older than it (common.sh: newer_than)
    assert os.stat(out).st_mtime_ns == written
    before = ArrayStore(out)["1-2-0"].copy()

    torch.manual_seed(1)  # retrained: other weights, same path
    saved(model, build("dnn", "tiny", input_dim=4, num_senones=5))
    assert _posteriors(model, feats, out) == (2, 0)
    assert os.stat(out).st_mtime_ns > written
    after = ArrayStore(out)["1-2-0"]
    assert not np.allclose(before, after)
    fresh = tmp_path / "fresh"
    _posteriors(model, feats, fresh)
    np.testing.assert_array_equal(after, ArrayStore(fresh)["1-2-0"])


def test_a_shard_of_other_utterances_is_redone(tmp_path: Path) -> None:
    feats, out, model = feature_dir(tmp_path / "feats"), tmp_path / "post", saved(tmp_path / "m.pt")
    assert _posteriors(model, feats, out, ["1-2-0", "1-2-1"]) == (1, 0)
    assert _posteriors(model, feats, out, ["1-2-2", "1-2-1"]) == (1, 0)
    assert sorted(ArrayStore(out)) == ["1-2-1", "1-2-2"]


def test_an_ensembles_digest_follows_its_members_weights(tmp_path: Path) -> None:
    members = [saved(tmp_path / f"m{i}.pt") for i in range(2)]
    spec = tmp_path / "ens.json"
    spec.write_text('{"format": "asr_kd.ensemble/1", "members": ["m0.pt", "m1.pt"], "temperature": 1.0, '
                    '"combine": "mean_prob"}\n')
    digest = load_model(spec).digest()
    assert load_model(spec).digest() == digest and load_model(spec, temperature=2.0).digest() != digest
    torch.manual_seed(1)
    saved(members[1], build("dnn", "tiny", input_dim=4, num_senones=5))
    assert load_model(spec).digest() != digest
