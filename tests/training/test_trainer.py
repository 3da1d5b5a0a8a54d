from __future__ import annotations

import csv
import json

import pytest
import torch

from asr_kd.models import load
from asr_kd.training import trainer
from asr_kd.training.config import load_config
from asr_kd.training.trainer import run
from asr_kd.utils.errors import AsrKdError


def state_dicts_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_dnn_learns_the_rule_and_writes_outputs(tmp_path, make_config):
    summary = run(make_config(tmp_path / "run", epochs=4))
    assert summary["valid_frame_acc"] > 0.6  # chance is ~0.2 (5 balanced classes)
    out = tmp_path / "run"
    for name in ("model.pt", "best.pt", "checkpoint.pt", "log.csv", "summary.json", "config.yaml", "train_utts.txt"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader((out / "log.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    model, meta = load(out / "model.pt")
    assert meta["training"]["valid_frame_acc"] == pytest.approx(summary["valid_frame_acc"])
    assert meta["feature"]["cmvn_mode"] == "speaker" and meta["feature"]["fbank"]["num_mel_bins"] == 8
    assert json.loads((out / "summary.json").read_text())["best_epoch"] == summary["best_epoch"]


def test_resume_after_interruption_gives_identical_result(tmp_path, make_config, monkeypatch):
    reference = run(make_config(tmp_path / "a"))
    ref_state = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]

    # "kill" the second run right after its 3rd checkpoint (mid-epoch 2), then resume it.
    calls = {"n": 0}
    real_save = trainer.save_training_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_training_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(make_config(tmp_path / "b"))
    monkeypatch.setattr(trainer, "save_training_checkpoint", real_save)
    assert not (tmp_path / "b" / "model.pt").exists()
    with pytest.raises(AsrKdError, match="--resume"):
        run(make_config(tmp_path / "b"))
    resumed = run(make_config(tmp_path / "b"), resume=True)

    assert state_dicts_equal(torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"], ref_state)
    for key in ("train_loss", "train_frame_acc", "valid_loss", "valid_frame_acc", "lr", "step"):
        assert [h[key] for h in resumed["history"]] == [h[key] for h in reference["history"]], key
    # Resuming a finished run is a no-op returning the same summary.
    assert run(make_config(tmp_path / "b"), resume=True)["valid_frame_acc"] == reference["valid_frame_acc"]


def test_resume_refuses_a_changed_config(tmp_path, make_config):
    run(make_config(tmp_path / "r", epochs=1))
    with pytest.raises(AsrKdError, match="different configuration"):
        run(make_config(tmp_path / "r", epochs=1, batch_size=32), resume=True)


def test_conformer_trains_on_utterance_batches(tmp_path, make_config):
    summary = run(make_config(tmp_path / "c", arch="conformer", epochs=2))
    assert summary["epochs_run"] == 2 and 0 <= summary["valid_frame_acc"] <= 1
    model, meta = load(tmp_path / "c" / "model.pt")
    assert meta["arch"] == "conformer" and meta["context"] is None


class RecordingObjective:
    """Cross-entropy that checks the contract (C) batch fields against the training FrameTable."""

    def __init__(self, table, device):
        self.table, self.calls = table, 0

    def __call__(self, logits, batch):
        self.calls += 1
        n = len(batch["targets"])
        assert logits.shape == (n, 5) and logits.dtype == torch.float32
        # the table lives on the CPU; on a GPU host the batch is on CUDA
        assert torch.equal(self.table.targets[batch["frame_index"].cpu()], batch["targets"].cpu())
        loss = torch.nn.functional.cross_entropy(logits, batch["targets"])
        return loss, {"my_stat": 1.0}


@pytest.mark.parametrize("arch", ["dnn", "conformer"])
def test_custom_objective_gets_contract_batches(tmp_path, make_config, arch):
    made = []

    def make_objective(table, device):
        made.append(RecordingObjective(table, device))
        return made[-1]

    summary = run(make_config(tmp_path / arch, arch=arch, epochs=1), make_objective=make_objective)
    assert made[0].calls == summary["steps"] > 0
    assert summary["history"][0]["train_my_stat"] == pytest.approx(1.0)


def test_train_fraction_takes_a_seeded_subset_of_the_non_validation_utterances(tmp_path, make_config, synth_exp):
    config = make_config(tmp_path / "f", epochs=1)
    config.data.train_fraction = 0.25
    run(config)
    chosen = (tmp_path / "f" / "train_utts.txt").read_text().split()
    assert len(chosen) == 3  # ceil(0.25 * 12): 16 utterances less the 4 of the validation split
    assert not set(chosen) & set((synth_exp / "splits" / "train-clean-5" / "valid.txt").read_text().split())


def test_config_errors_are_clear(tmp_path, make_config):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epoch: 3}\n")
    with pytest.raises(AsrKdError, match="unknown keys \\['epoch'\\] in section 'train'"):
        load_config(bad)
    config = load_config(None, ["train.epochs=2", "model.overrides={hidden_dim: 16}", "out_dir=x"])
    assert config.train.epochs == 2 and config.model.overrides == {"hidden_dim": 16}
    with pytest.raises(AsrKdError, match="data.train_subset is not set"):  # no corpus's subset is assumed
        run(load_config(None, [f"out_dir={tmp_path / 'no_subset'}"]))
    small = make_config(tmp_path / "s", epochs=1)
    small.model.num_senones = 3
    with pytest.raises(AsrKdError, match="senone 4 but the model has 3 outputs"):
        run(small)


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("arch", ["dnn", "conformer"])
def test_cuda_amp_training(tmp_path, make_config, amp, arch):
    summary = run(make_config(tmp_path / "g", arch=arch, device="cuda", amp=amp, epochs=2))
    assert summary["valid_frame_acc"] > (0.5 if arch == "dnn" else 0.0)
    model, _ = load(tmp_path / "g" / "model.pt", map_location="cuda")
    assert next(model.parameters()).is_cuda


@pytest.mark.slow
def test_cli_resume_after_kill_9(tmp_path, make_config):
    """A real ``kill -9`` of ``asr-kd train`` mid-run, then ``--resume``: same model as an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    def config_file(name: str):
        path = tmp_path / f"{name}.yaml"
        config = make_config(tmp_path / name, epochs=12, batch_size=16, checkpoint_every=5)
        path.write_text(yaml.safe_dump(config.to_dict()))
        return path

    command = [sys.executable, "-m", "asr_kd.cli", "train", "--config"]
    subprocess.run(command + [str(config_file("ref"))], check=True, capture_output=True)
    proc = subprocess.Popen(command + [str(config_file("killed"))], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    while not ckpt.exists() and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)  # somewhere mid-run, possibly mid-write of the next checkpoint
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists(), "run finished before it could be killed"
    subprocess.run(command + [str(config_file("killed")), "--resume"], check=True, capture_output=True)
    ref = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)["state_dict"]
    got = torch.load(tmp_path / "killed" / "model.pt", weights_only=True)["state_dict"]
    assert state_dicts_equal(ref, got)


def test_diverging_training_stops_with_a_clear_error(tmp_path, make_config):
    config = make_config(tmp_path / "nan", epochs=1)
    config.optim.lr = float("inf")
    with pytest.raises(AsrKdError, match="non-finite training loss"):
        run(config)


def test_keep_last_writes_the_final_epoch_model(tmp_path, make_config):
    config = make_config(tmp_path / "last", epochs=3)
    config.train.keep, config.train.patience = "last", 0
    summary = run(config)
    final_acc = summary["history"][-1]["valid_frame_acc"]
    assert summary["keep"] == "last" and summary["valid_frame_acc"] == final_acc
    _, meta = load(tmp_path / "last" / "model.pt")
    assert meta["training"]["epoch"] == 3 and meta["training"]["valid_frame_acc"] == final_acc
    bad = make_config(tmp_path / "bad", epochs=1)
    bad.train.keep = "sometimes"
    with pytest.raises(AsrKdError, match="train.keep must be 'best' or 'last'"):
        run(bad)


def test_valid_every_skips_validations_without_changing_the_model(tmp_path, make_config):
    def cosine(out, valid_every):
        config = make_config(out, epochs=5, keep="last", patience=0, valid_every=valid_every)
        config.optim.schedule = "cosine"
        return config

    every, sparse = run(cosine(tmp_path / "every", 1)), run(cosine(tmp_path / "sparse", 2))
    assert state_dicts_equal(load(tmp_path / "every" / "model.pt")[0].state_dict(),
                             load(tmp_path / "sparse" / "model.pt")[0].state_dict())
    # epochs 2 and 4 validated, and the last (5) always: the kept epoch's accuracy is measured
    assert ["valid_frame_acc" in h for h in sparse["history"]] == [False, True, False, True, True]
    assert sparse["valid_frame_acc"] == every["valid_frame_acc"] == every["history"][-1]["valid_frame_acc"]
    with open(tmp_path / "sparse" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["valid_frame_acc"] != "" for r in rows] == [False, True, False, True, True]
    # refused where a per-epoch decision reads the validation
    for keep, patience, schedule, reader in (("best", 0, "cosine", "train.keep=best"),
                                              ("last", 2, "cosine", "train.patience=2"),
                                              ("last", 0, "newbob", "optim.schedule=newbob")):
        bad = make_config(tmp_path / reader, epochs=1, keep=keep, patience=patience, valid_every=3)
        bad.optim.schedule = schedule
        with pytest.raises(AsrKdError, match=f"train.valid_every=3 skips validations that {reader} reads"):
            run(bad)
    with pytest.raises(AsrKdError, match="train.valid_every must be >= 1"):
        run(make_config(tmp_path / "zero", epochs=1, valid_every=0))


def test_resume_accepts_checkpoints_from_before_a_new_config_key(tmp_path, make_config):
    """A key added to the config classes later (with its default) must not block resuming."""
    run(make_config(tmp_path / "old", epochs=1))
    ckpt = tmp_path / "old" / "checkpoint.pt"
    payload = torch.load(ckpt, weights_only=True)
    del payload["config"]["data"]["subset_seed"]  # an "older" checkpoint without this (default-valued) key
    torch.save(payload, ckpt)
    assert run(make_config(tmp_path / "old", epochs=1), resume=True)["epochs_run"] == 1


def test_train_utts_list_selects_exactly_those_utterances(tmp_path, make_config):
    from asr_kd.training.data import training_utterances

    config = make_config(tmp_path / "l", epochs=1)
    every = training_utterances(config.data)
    listed = tmp_path / "utts.txt"
    listed.write_text("\n".join(every[:3][::-1]) + "\n")
    config.data.train_utts = str(listed)
    assert training_utterances(config.data) == sorted(every[:3])
    listed.write_text("no-such-utterance\n")
    with pytest.raises(AsrKdError, match="1 of 1 listed utterances have no features"):
        training_utterances(config.data)
