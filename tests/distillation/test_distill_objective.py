import pytest
import torch

from asr_kd.distillation.loss import distillation_loss
from asr_kd.distillation.soft_targets import TopKTargets
from asr_kd.distillation.teacher_objectives import (
    DistillationObjective,
    OnlineObjectiveFactory,
    OnlineTeacherObjective,
    StoreObjectiveFactory,
)
from asr_kd.distillation.teacher_store import TeacherStore, TeacherStoreConfig, TeacherTargets, dump_teacher
from asr_kd.features.dataset import FrameTable
from asr_kd.models import Ensemble, build, save
from asr_kd.training.augment import AUGMENTED_KEY, augment_batch
from asr_kd.training.batches import FrameBatcher, UtteranceBatcher
from asr_kd.training.config import AugmentConfig
from asr_kd.utils.errors import AsrKdError

NUM_SENONES = 24


def _store(tmp_path, features, teacher, temperature=2.0, top_k=5):
    out = tmp_path / f"store_T{temperature}_k{top_k}"
    dump_teacher(teacher, features, out, TeacherStoreConfig(temperature, NUM_SENONES, top_k), progress=False)
    return out


def _frame_batch(table, context=(2, 1), size=16):
    batcher = FrameBatcher(table, context, size)
    return batcher.build(batcher.plan(seed=3)[0], torch.device("cpu"))


def _utterance_batch(table, max_frames=60):
    batcher = UtteranceBatcher(table, max_frames=max_frames)
    return batcher.build(batcher.plan(seed=0)[0], torch.device("cpu"))


@pytest.mark.parametrize("make_batch", [_frame_batch, _utterance_batch], ids=["windows", "utterances"])
def test_store_objective_uses_frame_index(tmp_path, features, teacher, targets, make_batch):
    """A windowed (DNN) student and a whole-utterance (conformer) student read the same store rows."""
    table = FrameTable(features, targets=targets)
    objective = DistillationObjective(2.0, 0.7, TeacherTargets.load(_store(tmp_path, features, teacher), table))
    batch = make_batch(table)
    logits = torch.randn(len(batch["targets"]), NUM_SENONES, requires_grad=True)
    loss, stats = objective(logits, batch)
    loss.backward()
    # the same frames looked up utterance by utterance in the store
    store = TeacherStore(tmp_path / "store_T2.0_k5")
    rows = []
    for i in batch["frame_index"].tolist():
        u = int(torch.searchsorted(torch.from_numpy(table.offsets), i, right=True)) - 1
        rows.append((store.utterance(table.utt_ids[u]), i - int(table.offsets[u])))
    expected = TopKTargets(torch.stack([t.ids[r] for t, r in rows]), torch.stack([t.probs[r] for t, r in rows]))
    reference = distillation_loss(logits.detach(), expected, batch["targets"], 2.0, 0.7)
    assert loss.item() == pytest.approx(reference.loss.item(), rel=1e-6)
    assert stats["soft_ce"] == pytest.approx(reference.soft.item(), rel=1e-6)
    assert stats["hard_ce"] == pytest.approx(reference.hard.item(), rel=1e-6)
    assert 0.0 <= stats["teacher_agree"] <= 1.0 and logits.grad is not None


def test_store_objective_refuses_another_temperature(tmp_path, features, teacher, targets):
    table = FrameTable(features, targets=targets)
    with pytest.raises(AsrKdError, match="T=5.0 but the teacher store holds soft targets at T=2;"):
        StoreObjectiveFactory(_store(tmp_path, features, teacher), 5.0, 1.0)(table, torch.device("cpu"))


def test_lowrank_store_objective_at_each_served_temperature(tmp_path, features, teacher, targets):
    table = FrameTable(features, targets=targets)
    config = TeacherStoreConfig(1.0, NUM_SENONES, top_k=4, rank=5, temperatures=(2.0, 5.0), fit_frames=12)
    dump_teacher(teacher, features, tmp_path / "lr", config, progress=False)
    stored = TeacherTargets.load(tmp_path / "lr", table)
    batch = _frame_batch(table)
    logits = torch.randn(len(batch["targets"]), NUM_SENONES, requires_grad=True)
    for t in (1.0, 2.0, 5.0):  # T0 = 1 is served too
        loss, stats = DistillationObjective(t, 0.5, stored)(logits, batch)
        dense = stored.gather(batch["frame_index"]).probs(t)
        reference = distillation_loss(logits.detach(), dense, batch["targets"], t, 0.5)
        assert loss.item() == pytest.approx(reference.loss.item(), rel=1e-6)
        assert stats["soft_ce"] == pytest.approx(reference.soft.item(), rel=1e-6)
    loss.backward()
    assert logits.grad is not None
    with pytest.raises(AsrKdError, match=r"T=3.0 but the teacher store holds soft targets at T=1, 2, 5;"):
        StoreObjectiveFactory(tmp_path / "lr", 3.0, 1.0)(table, torch.device("cpu"))


def test_online_dnn_teacher_with_other_context_matches_dense_store(tmp_path, features, teacher, targets):
    table = FrameTable(features, targets=targets)
    stored = TeacherTargets.load(_store(tmp_path, features, teacher, temperature=3.0, top_k=None), table)
    online = OnlineTeacherObjective(teacher, table, temperature=3.0, alpha=1.0)
    batch = _frame_batch(table, context=(0, 0))  # the student's window differs from the teacher's (3, 2)
    got = online.teacher_targets(batch, torch.device("cpu"))
    assert torch.allclose(got, stored.gather(batch["frame_index"]), rtol=3e-3, atol=1e-4)
    loss, stats = online(torch.zeros(len(got), NUM_SENONES), batch)
    assert loss.item() == pytest.approx(9.0 * stats["soft_ce"], rel=1e-6)


def test_online_ensemble_top_k(features, teacher, targets):
    table = FrameTable(features, targets=targets)
    torch.manual_seed(1)
    other = build("dnn", "tiny", input_dim=8, num_senones=NUM_SENONES).eval()
    online = OnlineTeacherObjective(Ensemble([teacher, other]), table, 2.0, 0.5, top_k=4)
    batch = _frame_batch(table)
    got = online.teacher_targets(batch, torch.device("cpu"))
    dense = OnlineTeacherObjective([teacher, other], table, 2.0, 0.5).teacher_targets(batch, torch.device("cpu"))
    assert isinstance(got, TopKTargets) and torch.equal(got.probs, dense.topk(4).values)


def test_online_conformer_teacher(features, targets):
    table = FrameTable(features, targets=targets)
    conformer = build("conformer", "tiny", input_dim=8, num_senones=NUM_SENONES).eval()
    online = OnlineTeacherObjective(conformer, table, 1.0, 1.0)
    batch = _utterance_batch(table)
    got = online.teacher_targets(batch, torch.device("cpu"))
    expected = torch.softmax(UtteranceBatcher.logits(conformer, batch), -1)
    assert torch.allclose(got, expected, atol=1e-6)
    with pytest.raises(AsrKdError, match="needs whole utterances"):
        online.teacher_targets(_frame_batch(table), torch.device("cpu"))


def test_online_factory_loads_model_file(tmp_path, features, teacher, targets):
    save(tmp_path / "teacher.pt", teacher, {})
    table = FrameTable(features, targets=targets)
    objective = OnlineObjectiveFactory([tmp_path / "teacher.pt"], 2.0, 1.0)(table, torch.device("cpu"))
    batch = _frame_batch(table)
    direct = OnlineTeacherObjective(teacher, table, 2.0, 1.0).teacher_targets(batch, torch.device("cpu"))
    assert torch.allclose(objective.teacher_targets(batch, torch.device("cpu")), direct)
    save(tmp_path / "global.pt", teacher, {"feature": {"cmvn_mode": "global"}})
    with pytest.raises(AsrKdError, match="CMVN mode 'global' but the student uses 'speaker'"):
        OnlineObjectiveFactory([tmp_path / "global.pt"], 2.0, 1.0, cmvn_mode="speaker")(table, torch.device("cpu"))


def test_factories_pickle_for_multiprocess_training(tmp_path):
    import pickle

    for factory in (StoreObjectiveFactory(tmp_path, 2.0, 1.0), OnlineObjectiveFactory([tmp_path / "t.pt"], 2.0, 1.0)):
        assert vars(pickle.loads(pickle.dumps(factory))) == vars(factory)


@pytest.mark.parametrize("temperature, alpha, policy, message", [
    (0.0, 1.0, "tail", "temperature"), (2.0, 1.5, "tail", "alpha"), (2.0, 1.0, "uniform", "top-k policy")])
def test_bad_settings_are_user_errors(features, teacher, targets, temperature, alpha, policy, message):
    table = FrameTable(features, targets=targets)
    with pytest.raises(AsrKdError, match=message):
        OnlineTeacherObjective(teacher, table, temperature, alpha, topk_policy=policy)
    with pytest.raises(AsrKdError, match="combine mode"):
        OnlineTeacherObjective(teacher, table, 2.0, 1.0, combine="max")


def test_online_teacher_labels_the_students_augmented_windows(features, teacher, targets):
    table = FrameTable(features, targets=targets)
    online = OnlineTeacherObjective(teacher, table, 2.0, 1.0)
    torch.manual_seed(0)
    batch = augment_batch(_frame_batch(table, context=teacher.context), AugmentConfig(freq_masks=1, freq_width=4))
    got = online.teacher_targets(batch, torch.device("cpu"))
    with torch.no_grad():
        expected = torch.softmax(teacher(batch["inputs"]) / 2.0, -1)
    assert torch.allclose(got, expected, atol=1e-6)
    clean = online.teacher_targets({**batch, AUGMENTED_KEY: False}, torch.device("cpu"))
    assert not torch.allclose(got, clean, atol=1e-4)  # the clean windows give other targets
    other = augment_batch(_frame_batch(table, context=(0, 0)), AugmentConfig(noise_std=0.1))
    with pytest.raises(AsrKdError, match="6-frame context window but the augmented student trains on 1-frame"):
        online.teacher_targets(other, torch.device("cpu"))
