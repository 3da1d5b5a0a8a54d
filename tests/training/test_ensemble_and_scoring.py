from __future__ import annotations

import json

import pytest
import torch

from asr_kd.cli import main
from asr_kd.experiment import Experiment
from asr_kd.features.dataset import FeatureSet
from asr_kd.models import Ensemble, load
from asr_kd.scoring.frame_accuracy import alignment_stores, frame_accuracy
from asr_kd.training.ensemble import member_configs, train_ensemble
from asr_kd.utils.array_store import ArrayStore

TRAIN, DEV, NUM_SENONES = "train-clean-5", "dev-clean-2", 5  # the synth_exp fixture's


def test_member_configs_differ_in_seed_and_dir(tmp_path, make_config):
    members = member_configs(make_config(tmp_path / "e", seed=7), 3, archs=["dnn/tiny", "conformer/tiny"])
    assert [m.train.seed for m in members] == [7, 8, 9]
    assert [m.model.arch for m in members] == ["dnn", "conformer", "dnn"]
    assert members[2].out_dir.endswith("member2")


def test_ensemble_training_scoring_and_posteriors(tmp_path, make_config, synth_exp, capsys):
    result = train_ensemble(make_config(tmp_path / "ens", epochs=2), num_members=2)
    ens_path = tmp_path / "ens" / "ensemble.json"
    assert result["ensemble"] == str(ens_path)
    ensemble, meta = load(ens_path)
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 2

    # Member frame accuracy from the scorer on the validation utterances equals the trainer's own.
    member, _ = load(tmp_path / "ens" / "member0" / "model.pt")
    valid = (synth_exp / "splits" / TRAIN / "valid.txt").read_text().split()

    def score(subset: str, utt_ids=None) -> dict:
        features = FeatureSet(Experiment(synth_exp).feats_dir(subset), "speaker")
        return frame_accuracy(member, features, *alignment_stores(synth_exp, subset), utt_ids)

    assert score(TRAIN, valid)["frame_acc"] == pytest.approx(result["members"][0]["valid_frame_acc"], abs=1e-9)
    scored = score(DEV)
    assert scored["silence"]["frames"] + scored["nonsilence"]["frames"] == scored["frames"]

    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(ens_path), "--exp", str(synth_exp), "--subset", DEV,
                 "--members", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["members"]) == 2 and report["combine"] == "mean_prob"
    assert report["gain_over_mean_member"] == pytest.approx(report["frame_acc"] - report["mean_member_frame_acc"])

    post_dir = tmp_path / "post"
    args = ["posteriors", "--model", str(tmp_path / "ens" / "member0" / "model.pt"),
            str(tmp_path / "ens" / "member1" / "model.pt"), "--exp", str(synth_exp), "--subset", DEV,
            "--out", str(post_dir), "--utts-per-shard", "4", "--temperature", "2"]
    assert main(args) == 0
    store = ArrayStore(post_dir)
    assert store.meta["num_senones"] == NUM_SENONES and store.dtype == "float16"
    feats = ArrayStore(synth_exp / "feats" / DEV)
    for utt_id in feats:
        post = store[utt_id].astype("float32")
        assert post.shape == (feats.num_rows(utt_id), NUM_SENONES)
        assert abs(float(torch.tensor(post).exp().sum(-1).mean()) - 1) < 1e-2
    assert main(args) == 0  # resumable: complete shards are skipped

    some = sorted(feats)[:3]  # --utts: only those utterances, the same log-posteriors
    (tmp_path / "some.txt").write_text("\n".join(some) + "\n")
    some_args = args[:args.index("--out")] + ["--utts", str(tmp_path / "some.txt"), "--out", str(tmp_path / "some")]
    assert main(some_args + ["--utts-per-shard", "4", "--temperature", "2"]) == 0
    assert sorted(ArrayStore(tmp_path / "some")) == some
    for utt_id in some:
        assert (ArrayStore(tmp_path / "some")[utt_id] == store[utt_id]).all()
    (tmp_path / "unknown.txt").write_text(some[0] + "\nnot-an-utterance\n")
    unknown_args = args[:args.index("--out")] + ["--utts", str(tmp_path / "unknown.txt"), "--out", str(tmp_path / "x")]
    assert main(unknown_args) == 2  # one error line naming the file
    assert not (tmp_path / "x").exists()
    for command in (["evaluate", "--out", str(tmp_path / "x.json")],
                    ["distill", "dump-teacher", "--teacher", str(tmp_path / "ens" / "member0" / "model.pt"),
                     "--temperature", "2", "--top-k", "dense", "--out", str(tmp_path / "x")]):
        model = [] if command[0] == "distill" else ["--model", str(tmp_path / "ens" / "member0" / "model.pt")]
        assert main([*command, *model, "--exp", str(synth_exp), "--subset", DEV,
                     "--utts", str(tmp_path / "unknown.txt")]) == 2, command
        assert "1 of 2 listed utterance(s) not in the features" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_parallel_members_match_sequential(tmp_path, make_config):
    """Members trained in 2 worker processes are the same models as when trained one after the other."""
    seq = train_ensemble(make_config(tmp_path / "seq", epochs=1), num_members=2)
    par = train_ensemble(make_config(tmp_path / "par", epochs=1), num_members=2, jobs=2)
    assert [m["valid_frame_acc"] for m in par["members"]] == [m["valid_frame_acc"] for m in seq["members"]]
    for i in range(2):
        a = torch.load(tmp_path / "seq" / f"member{i}" / "model.pt", weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "par" / f"member{i}" / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)
