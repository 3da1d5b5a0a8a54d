"""The trainer on ``data.loader=stream``: same results as the in-memory table where the design
allows it, exact resume mid-epoch, DDP ranks on disjoint parts, teacher arrays in the batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from training_synth import DIM, NUM_SENONES, TRAIN

from asr_kd.distillation.teacher_objectives import OnlineObjectiveFactory, StoreObjectiveFactory
from asr_kd.distillation.teacher_store import TeacherStoreConfig, TeacherTargets, dump_teacher
from asr_kd.features.dataset import FeatureSet, FrameTable
from asr_kd.models import build, save
from asr_kd.training import trainer
from asr_kd.training.trainer import run
from asr_kd.utils.array_store import ArrayStore
from tests.training.test_ddp import GLOO_TEARDOWN_ABORT
from tests.training.test_trainer import state_dicts_equal

STREAM_EXACT = {"loader": "stream", "stream_chunk_frames": 0, "stream_dtype": "float32"}
STREAM_CHUNKED = {"loader": "stream", "stream_chunk_frames": 150, "stream_dtype": "float16"}


def with_data(config, **data):
    for key, value in data.items():
        setattr(config.data, key, value)
    return config


def model_state(out_dir) -> dict:
    return torch.load(out_dir / "model.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("arch", ["dnn", "conformer"])
def test_resident_float32_stream_trains_the_same_model_as_memory(tmp_path, make_config, arch):
    memory = run(make_config(tmp_path / "memory", arch=arch, epochs=2))
    stream = run(with_data(make_config(tmp_path / "stream", arch=arch, epochs=2), **STREAM_EXACT))
    assert state_dicts_equal(model_state(tmp_path / "memory"), model_state(tmp_path / "stream"))
    for key in ("train_loss", "valid_frame_acc", "step"):
        assert [h[key] for h in stream["history"]] == [h[key] for h in memory["history"]], key


def test_chunked_stream_learns_and_resumes_exactly_after_interruption(tmp_path, make_config, monkeypatch):
    reference = run(with_data(make_config(tmp_path / "a", epochs=3), **STREAM_CHUNKED))
    assert reference["valid_frame_acc"] > 0.5  # chance is ~0.2
    calls = {"n": 0}
    real_save = trainer.save_training_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # mid-epoch 2, inside a chunk
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_training_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(with_data(make_config(tmp_path / "b", epochs=3), **STREAM_CHUNKED))
    monkeypatch.setattr(trainer, "save_training_checkpoint", real_save)
    resumed = run(with_data(make_config(tmp_path / "b", epochs=3), **STREAM_CHUNKED), resume=True)
    assert state_dicts_equal(model_state(tmp_path / "a"), model_state(tmp_path / "b"))
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in reference["history"]]


def test_unknown_loader_is_a_clear_error(tmp_path, make_config):
    from asr_kd.utils.errors import AsrKdError

    with pytest.raises(AsrKdError, match="unknown data.loader 'disk'"):
        run(with_data(make_config(tmp_path / "x"), loader="disk"))


@pytest.fixture
def teacher_store(tmp_path, synth_exp):
    torch.manual_seed(0)
    teacher = build("dnn", "tiny", input_dim=DIM, num_senones=NUM_SENONES).eval()
    out = tmp_path / "teacher"
    dump_teacher(teacher, FeatureSet(synth_exp / "feats" / TRAIN), out, TeacherStoreConfig(2.0, NUM_SENONES, 3),
                 utts_per_shard=5, progress=False)
    return out


def test_distillation_from_a_streamed_store_matches_the_in_ram_targets(tmp_path, make_config, teacher_store):
    factory = StoreObjectiveFactory(teacher_store, 2.0, 0.5)
    memory = run(make_config(tmp_path / "memory", epochs=2), make_objective=factory)
    stream = run(with_data(make_config(tmp_path / "stream", epochs=2), **STREAM_EXACT), make_objective=factory)
    assert state_dicts_equal(model_state(tmp_path / "memory"), model_state(tmp_path / "stream"))
    assert [h["train_soft_ce"] for h in stream["history"]] == [h["train_soft_ce"] for h in memory["history"]]


def test_online_teacher_with_another_window_on_the_stream(tmp_path, make_config):
    """The online teacher gathers its own (wider) windows of the batch's frames from the current chunk."""
    torch.manual_seed(1)
    teacher = build("dnn", "tiny", input_dim=DIM, num_senones=NUM_SENONES, left=4, right=4).eval()
    save(tmp_path / "teacher.pt", teacher, {"feature": {"cmvn_mode": "speaker"}})
    factory = OnlineObjectiveFactory([tmp_path / "teacher.pt"], 2.0, 0.5, cmvn_mode="speaker")
    memory = run(make_config(tmp_path / "memory", epochs=1), make_objective=factory)
    stream = run(with_data(make_config(tmp_path / "stream", epochs=1), **STREAM_EXACT), make_objective=factory)
    assert state_dicts_equal(model_state(tmp_path / "memory"), model_state(tmp_path / "stream"))
    chunked = run(with_data(make_config(tmp_path / "chunked", epochs=1), **STREAM_CHUNKED), make_objective=factory)
    assert chunked["history"][0]["train_soft_ce"] > 0 and memory["history"] and stream["history"]


class TeacherAlignmentCheck:
    """The distillation objective, checking that batch["teacher"] holds the store's targets of the batch's frames."""

    def __init__(self, frames, device, store, synth_exp):
        self.objective = StoreObjectiveFactory(store, 2.0, 0.5)(frames, device)
        features = FeatureSet(synth_exp / "feats" / TRAIN)
        table = FrameTable(features, frames.corpus.utt_ids, ArrayStore(synth_exp / "ali" / TRAIN / "senones"))
        self.reference, self.table, self.calls = TeacherTargets.load(store, table), table, 0

    def __call__(self, logits, batch):
        self.calls += 1
        expected = self.reference.gather(batch["frame_index"])
        assert torch.equal(batch["teacher"].ids.cpu(), expected.ids)
        assert torch.equal(batch["teacher"].probs.cpu(), expected.probs)
        assert torch.equal(batch["targets"].cpu(), self.table.targets[batch["frame_index"].cpu()])
        return self.objective(logits, batch)


def test_teacher_arrays_arrive_aligned_with_their_frames_in_chunks(tmp_path, make_config, teacher_store, synth_exp):
    made = []

    def make_objective(frames, device):
        made.append(TeacherAlignmentCheck(frames, device, teacher_store, synth_exp))
        return made[-1]

    summary = run(with_data(make_config(tmp_path / "s", epochs=1), **STREAM_CHUNKED), make_objective=make_objective)
    assert made[0].calls == summary["steps"] > 0 and summary["history"][0]["train_soft_ce"] > 0


def test_torchrun_two_processes_stream_disjoint_parts(tmp_path, make_config):
    config = with_data(make_config(tmp_path / "ddp", epochs=2, batch_size=32, device="cpu"), **STREAM_CHUNKED)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "asr_kd.training.trainer", "--config", str(path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    if proc.returncode != 0 and GLOO_TEARDOWN_ABORT in proc.stderr:  # see test_ddp.py
        shutil.rmtree(tmp_path / "ddp")
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and summary["valid_frame_acc"] > 0.3
    # 16 utterances x 30-59 frames: each rank streams half of them, in batches of <= 32
    steps = summary["history"][0]["step"]
    assert 16 * 30 / 2 / 32 <= steps <= 16 * 60 / 2 / 16
