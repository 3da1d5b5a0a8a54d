"""Export round trips on real tiny features: TorchScript, ONNX, bundle folder, one-file inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_kd.export import (
    export_onnx,
    export_torchscript,
    load_bundle,
    load_torchscript,
    onnx_max_abs_diff,
    onnx_session,
    posteriors_for_audio,
    write_bundle,
)
from asr_kd.features.cmvn import Cmvn, CmvnStats, utterance_cmvn
from asr_kd.features.dataset import FeatureSet
from asr_kd.models import load
from asr_kd.utils.errors import AsrKdError

TRAIN, DEV = "train-clean-5", "dev-clean-2"


def test_torchscript_equals_pytorch(saved_model: Path, dev_batch, tmp_path: Path) -> None:
    model, _ = load(saved_model)
    feats, lengths = dev_batch
    scripted = load_torchscript(export_torchscript(model, tmp_path / "m.torchscript.pt"))
    with torch.no_grad():
        assert torch.equal(scripted(feats, lengths), model(feats, lengths))
        # a length the export never saw
        assert torch.equal(scripted(feats[:1, :17], lengths[:1].clamp(max=17)), model(feats[:1, :17],
                                                                                      lengths[:1].clamp(max=17)))


def test_onnx_matches_pytorch(saved_model: Path, dev_batch, tmp_path: Path) -> None:
    model, _ = load(saved_model)
    feats, lengths = dev_batch
    session = onnx_session(export_onnx(model, tmp_path / "m.onnx"))
    assert onnx_max_abs_diff(model, session, feats, lengths) < 1e-4
    assert onnx_max_abs_diff(model, session, feats[1:2, : lengths[1]], lengths[1:2]) < 1e-4  # batch 1, other T


def test_bundle_round_trip(saved_model: Path, tree_dir: Path, tiny_exp: Path, tmp_path: Path) -> None:
    meta = write_bundle(saved_model, tmp_path / "bundle", tree_dir, onnx=False)
    files = {p.name for p in (tmp_path / "bundle").iterdir()}
    assert files == {"bundle.json", "model.pt", "model.torchscript.pt", "tree.json", "senone_counts.npy",
                     "senone_log_priors.npy"}
    assert meta["checks"]["torchscript_max_abs_diff"] == 0.0
    assert json.loads((tmp_path / "bundle" / "bundle.json").read_text())["num_senones"] == meta["num_senones"]

    bundle = load_bundle(tmp_path / "bundle")
    mean, std = Cmvn.load(tiny_exp / "feats" / TRAIN / "cmvn.npz").global_stats.mean_std()
    np.testing.assert_allclose(bundle.cmvn_mean_std[0], mean, rtol=1e-6)
    np.testing.assert_allclose(bundle.cmvn.global_stats.mean_std()[1], std, rtol=1e-5)
    priors = bundle.log_priors()
    assert priors.shape == (meta["num_senones"],) and np.isclose(np.exp(priors).sum(), 1.0, atol=1e-5)
    assert bundle.metadata["context"] == load(saved_model)[1]["context"]


def _log_softmax(model, feats: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(feats, dtype=np.float32))[None]
        return torch.log_softmax(model(x, torch.tensor([x.shape[1]]))[0], -1).numpy()


def test_posteriors_for_audio_match_stored_features(saved_model: Path, tiny_exp: Path, tmp_path: Path) -> None:
    from asr_kd.data import read_manifest
    from asr_kd.experiment import Experiment

    utt = read_manifest(Experiment(tiny_exp).manifest(DEV))[0]
    model, meta = load(saved_model)
    dev_cmvn = Cmvn.load(tiny_exp / "feats" / DEV / "cmvn.npz")
    train_cmvn = Cmvn.load(tiny_exp / "feats" / TRAIN / "cmvn.npz")
    global_feats = FeatureSet(tiny_exp / "feats" / DEV, "global", cmvn=train_cmvn)
    raw = FeatureSet(tiny_exp / "feats" / DEV, "none")[utt.utt_id]

    # a model file works like a bundle dir; the fixture model was trained with per-speaker CMVN
    log_post = posteriors_for_audio(saved_model, utt.audio_path, cmvn="global")
    assert log_post.shape == (len(raw), meta["num_senones"])
    np.testing.assert_allclose(log_post, _log_softmax(model, global_feats[utt.utt_id]), atol=1e-4)
    np.testing.assert_allclose(np.exp(log_post).sum(1), 1.0, atol=1e-4)

    # default for a per-speaker model: the utterance's own statistics (+ 200 global frames)
    bundle = load_bundle(saved_model)
    own = utterance_cmvn(raw, bundle.cmvn.global_stats)
    np.testing.assert_allclose(own.mean(0), 0.0, atol=0.05 + 200 / len(raw))  # mostly its own mean
    np.testing.assert_allclose(posteriors_for_audio(bundle, utt.audio_path), _log_softmax(model, own), atol=1e-4)

    # the caller's speaker statistics: exactly what training-style per-speaker CMVN gives
    speaker = dev_cmvn.speakers[utt.speaker]
    expected = _log_softmax(model, dev_cmvn.normalize(raw, utt.speaker, "speaker"))
    np.testing.assert_allclose(posteriors_for_audio(bundle, utt.audio_path, speaker=speaker), expected, atol=1e-4)
    with pytest.raises(AsrKdError, match="speaker CMVN statistics of dimension 3"):
        posteriors_for_audio(bundle, utt.audio_path, speaker=CmvnStats.zeros(3))
    with pytest.raises(AsrKdError, match="unknown CMVN choice"):
        posteriors_for_audio(bundle, utt.audio_path, cmvn="speaker")


def test_utterance_cmvn_leans_on_the_prior_for_short_utterances() -> None:
    rng = np.random.default_rng(0)
    prior = CmvnStats.zeros(3)
    prior.add(rng.normal(0.0, 1.0, (5000, 3)))
    short, long = rng.normal(4.0, 2.0, (20, 3)), rng.normal(4.0, 2.0, (20000, 3))
    assert abs(utterance_cmvn(long, prior).mean()) < 0.05 and abs(utterance_cmvn(long, prior).std() - 1) < 0.05
    # 20 own frames against 200 prior frames: the mean stays near the prior's
    assert utterance_cmvn(short, prior).mean() > 1.0


def test_bundle_rejects_bad_inputs(saved_model: Path, tree_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(AsrKdError, match="not an exported model folder"):
        load_bundle(tmp_path)
    wrong = tmp_path / "tree"
    wrong.mkdir()
    (wrong / "tree.json").write_text((tree_dir / "tree.json").read_text())
    np.save(wrong / "senone_counts.npy", np.ones(5, dtype=np.int64))
    with pytest.raises(AsrKdError, match="senone counts"):
        write_bundle(saved_model, tmp_path / "out", wrong, onnx=False)
    (saved_model.parent / "other").mkdir(exist_ok=True)
    alone = saved_model.parent / "other" / "model.pt"
    alone.write_bytes(saved_model.read_bytes())
    with pytest.raises(AsrKdError, match="config.yaml does not exist"):
        load_bundle(alone)


def test_ensemble_posteriors_for_audio(saved_model: Path, tiny_exp: Path, tmp_path: Path) -> None:
    from asr_kd.data import read_manifest
    from asr_kd.experiment import Experiment
    from asr_kd.models import save_ensemble

    flac = read_manifest(Experiment(tiny_exp).manifest(DEV))[1].audio_path
    save_ensemble(tmp_path / "ens.json", [saved_model, saved_model])  # identical members: same posteriors
    for temperature in (1.0, 2.0):
        np.testing.assert_allclose(posteriors_for_audio(tmp_path / "ens.json", flac, temperature),
                                   posteriors_for_audio(saved_model, flac, temperature), atol=1e-5)
    with pytest.raises(AsrKdError, match="one by one"):
        write_bundle(tmp_path / "ens.json", tmp_path / "out")


def test_torchscript_is_loaded_only_when_asked_and_only_if_unchanged(saved_model: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14.10: torch.jit.load runs code from the file."""
    from asr_kd.models import build

    write_bundle(saved_model, tmp_path / "bundle", onnx=False)
    bundle_dir = tmp_path / "bundle"
    assert bundle_dir.joinpath("bundle.json").exists()
    with monkeypatch.context() as m:
        m.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("load_bundle ran torch.jit.load"))
        bundle = load_bundle(bundle_dir)
        posteriors_for_audio(bundle, next(Path(__file__).parents[2].glob("data/LibriSpeech/dev-clean-2/*/*/*.flac")))
    assert bundle.torchscript() is not None  # asked for, checksum matches
    other = build("dnn", "tiny", input_dim=40, num_senones=bundle.model.num_senones)
    export_torchscript(other, bundle_dir / "model.torchscript.pt")  # a valid TorchScript file, but not ours
    with pytest.raises(AsrKdError, match="model.torchscript.pt: does not match the checksum in bundle.json"):
        bundle.torchscript()


def test_export_replaces_only_export_folders(saved_model: Path, tmp_path: Path) -> None:
    first = write_bundle(saved_model, tmp_path / "bundle", onnx=False)
    again = write_bundle(saved_model, tmp_path / "bundle", onnx=False)  # an export folder: replaced
    assert again["sha256"]["model.pt"] == first["sha256"]["model.pt"] and not list(tmp_path.glob(".bundle.*"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(AsrKdError, match="mine: exists and is not an export folder"):
        write_bundle(saved_model, tmp_path / "mine", onnx=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("diff", [float("nan"), 1.0])
def test_export_checks_fail_on_nan_and_large_differences(diff: float) -> None:
    from asr_kd.export.bundle import ONNX_TOLERANCE, _check_close

    with pytest.raises(AsrKdError, match="differ from PyTorch by"):
        _check_close(Path("m.onnx"), "ONNX", diff, ONNX_TOLERANCE)
    _check_close(Path("m.onnx"), "ONNX", ONNX_TOLERANCE / 2, ONNX_TOLERANCE)
