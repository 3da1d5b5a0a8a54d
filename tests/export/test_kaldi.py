"""Kaldi ark/scp round trips (kaldiio) and the export CLI."""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from asr_kd.export import KaldiFeatureSet, load_bundle, read_matrices, write_matrices, write_model_outputs
from asr_kd.features.cmvn import Cmvn
from asr_kd.features.dataset import FeatureSet
from asr_kd.models import load, utterance_log_posteriors
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.errors import AsrKdError

TRAIN, DEV = "train-clean-5", "dev-clean-2"


def test_matrices_round_trip_through_ark_and_scp(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = {f"utt-{i}": rng.standard_normal((5 + i, 7)).astype(np.float32) for i in range(4)}
    assert write_matrices(tmp_path / "m.ark", items.items(), tmp_path / "m.scp") == 4
    for path in ("m.ark", "m.scp"):
        back = read_matrices(tmp_path / path)
        assert sorted(back) == sorted(items)
        for k, v in items.items():
            np.testing.assert_array_equal(back[k], v)
    # what Kaldi tools see: kaldiio's own reader agrees, scp lines are "utt ark:offset"
    assert dict(kaldiio.load_ark(str(tmp_path / "m.ark"))).keys() == items.keys()
    first = (tmp_path / "m.scp").read_text().splitlines()[0].split()
    assert first[0] == "utt-0" and first[1].startswith(str((tmp_path / "m.ark").resolve()) + ":")


def test_write_matrices_rejects_bad_items(tmp_path: Path) -> None:
    with pytest.raises(AsrKdError, match="whitespace"):
        write_matrices(tmp_path / "a.ark", [("bad id", np.zeros((2, 2)))])
    with pytest.raises(AsrKdError, match=r"\(T, D\) matrix"):
        write_matrices(tmp_path / "a.ark", [("u", np.zeros(3))])
    assert not (tmp_path / "a.ark").exists()  # nothing half-written
    with pytest.raises(AsrKdError, match="not a readable Kaldi"):
        (tmp_path / "junk.ark").write_bytes(b"u1 \0Bjunk")
        read_matrices(tmp_path / "junk.ark")


def test_kaldi_features_equal_feature_dir(tiny_exp: Path, tmp_path: Path) -> None:
    feats_dir = tiny_exp / "feats" / DEV
    store = ArrayStore(feats_dir)
    write_matrices(tmp_path / "feats.ark", ((u, store[u]) for u in sorted(store.keys())), tmp_path / "feats.scp")
    (tmp_path / "utt2spk").write_text((feats_dir / "utt2spk.tsv").read_text().replace("\t", " "))
    cmvn = Cmvn.load(feats_dir / "cmvn.npz")
    ours = FeatureSet(feats_dir, "speaker")
    kaldi = KaldiFeatureSet(tmp_path / "feats.scp", cmvn, "speaker", tmp_path / "utt2spk")
    assert kaldi.utt_ids() == ours.utt_ids() and kaldi.dim == 40
    for u in ours.utt_ids():
        np.testing.assert_array_equal(kaldi[u], ours[u])
        assert kaldi.store.num_rows(u) == len(ours[u])
    with pytest.raises(AsrKdError, match="needs statistics"):
        KaldiFeatureSet(tmp_path / "feats.scp", None, "global")


def test_model_outputs_as_log_likelihoods(saved_model: Path, tiny_exp: Path, tmp_path: Path) -> None:
    model, _ = load(saved_model)
    features = FeatureSet(tiny_exp / "feats" / DEV, "speaker")
    log_priors = np.log(np.full(model.num_senones, 1.0 / model.num_senones))
    n = write_model_outputs(model, features, tmp_path / "ll.ark", tmp_path / "ll.scp", log_priors, 0.5,
                            progress=False)
    assert n == len(features.utt_ids())
    back = read_matrices(tmp_path / "ll.scp")
    for utt_id, post in utterance_log_posteriors(model, features):
        np.testing.assert_allclose(back[utt_id], post.numpy() - 0.5 * log_priors, rtol=1e-6, atol=1e-5)


def test_cli_export_then_kaldi_ark(saved_model: Path, tree_dir: Path, tiny_exp: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    from asr_kd.cli import main

    out = tmp_path / "bundle"
    assert main(["export", "--model", str(saved_model), "--out", str(out), "--tree-dir", str(tree_dir),
                 "--check-feats", str(tiny_exp / "feats" / DEV), "--check-utts", "2"]) == 0
    assert "ONNX max |diff|" in capsys.readouterr().out
    bundle = load_bundle(out)
    assert bundle.metadata["checks"]["onnx_max_abs_diff"] < 1e-4
    assert bundle.metadata["checks"]["inputs"] == f"2 utterances of {tiny_exp / 'feats' / DEV}"
    assert bundle.metadata["files"]["onnx"] == "model.onnx"
    assert bundle.torchscript()(torch.zeros(1, 9, 40), torch.tensor([9])).shape == (1, 9, bundle.model.num_senones)

    assert main(["kaldi-ark", "--model", str(out), "--feats", str(tiny_exp / "feats" / DEV),
                 "--ark", str(tmp_path / "ll.ark"), "--loglikes"]) == 0
    assert "10 utterances of log-likelihoods" in capsys.readouterr().out
    assert len(read_matrices(tmp_path / "ll.scp")) == 10

    assert main(["export", "--model", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert "missing.pt: model file does not exist" in capsys.readouterr().err
