import numpy as np
import pytest
import torch

from asr_kd.distillation.accounting import bytes_per_frame
from asr_kd.distillation.soft_targets import TopKTargets, ensemble_soft_targets
from asr_kd.distillation.teacher_store import (
    TeacherStore,
    TeacherStoreConfig,
    TeacherTargets,
    dump_teacher,
    dump_teacher_stores,
)
from asr_kd.features.dataset import FeatureSet, FrameTable
from asr_kd.models import Ensemble, build, utterance_log_posteriors
from asr_kd.utils.errors import AsrKdError

NUM_SENONES = 24  # the conftest teacher's output size


def _reference(teacher, features, temperature):
    return dict(utterance_log_posteriors(teacher, features, temperature=temperature))


def test_top_k_store_round_trip_keyed_by_utterance(tmp_path, features, teacher, utt_lengths):
    config = TeacherStoreConfig(temperature=2.0, num_senones=NUM_SENONES, top_k=5, teachers=("t.pt",))
    summary = dump_teacher(teacher, features, tmp_path / "store", config, utts_per_shard=2, progress=False)
    assert (summary.utterances, summary.shards_written, summary.shards_skipped) == (5, 3, 0)
    assert summary.frames_written == sum(utt_lengths.values())
    store = TeacherStore(tmp_path / "store")
    assert store.config == config and store.ids.dtype == np.int16 and store.probs.dtype == np.float16
    reference = _reference(teacher, features, 2.0)
    for utt_id, n in utt_lengths.items():
        targets = store.utterance(utt_id)
        assert isinstance(targets, TopKTargets) and targets.ids.shape == (n, 5)
        top, ids = reference[utt_id].exp().topk(5, dim=-1)
        assert torch.equal(targets.ids, ids)
        assert torch.allclose(targets.probs, top, rtol=2e-3, atol=1e-4)
    assert store.measured_bytes_per_frame() > bytes_per_frame(NUM_SENONES, 5)  # plus .npy headers


def test_dense_store_matches_teacher(tmp_path, features, teacher, utt_lengths):
    config = TeacherStoreConfig(temperature=1.0, num_senones=NUM_SENONES, top_k=None)
    dump_teacher(teacher, features, tmp_path / "dense", config, progress=False)
    store = TeacherStore(tmp_path / "dense")
    assert store.ids is None
    reference = _reference(teacher, features, 1.0)
    for utt_id in utt_lengths:
        assert torch.allclose(store.utterance(utt_id), reference[utt_id].exp(), rtol=2e-3, atol=1e-4)


def test_ensemble_members_are_combined_as_the_store_says(tmp_path, features, teacher):
    torch.manual_seed(1)
    other = build("dnn", "tiny", input_dim=8, num_senones=NUM_SENONES).eval()
    ensemble = Ensemble([teacher, other], temperature=7.0, combine="geometric")  # its own settings are not used
    dump_teacher(ensemble, features, tmp_path / "ens", TeacherStoreConfig(3.0, NUM_SENONES, top_k=4), progress=False)
    members = [_reference(m, features, 1.0)["s2-b-0001"] for m in (teacher, other)]  # log_softmax(z) = z + const
    expected = ensemble_soft_targets(torch.stack(members), 3.0, "mean_prob")
    got = TeacherStore(tmp_path / "ens").utterance("s2-b-0001")
    assert torch.allclose(got.probs, expected.topk(4).values, rtol=2e-3, atol=1e-4)


def test_one_pass_writes_several_stores(tmp_path, features, teacher):
    configs = {tmp_path / "T1_k5": TeacherStoreConfig(1.0, NUM_SENONES, top_k=5),
               tmp_path / "T2_dense": TeacherStoreConfig(2.0, NUM_SENONES, top_k=None),
               tmp_path / "T5_k3": TeacherStoreConfig(5.0, NUM_SENONES, top_k=3)}
    summaries = dump_teacher_stores(teacher, features, configs, utts_per_shard=2, progress=False)
    assert {s.shards_written for s in summaries.values()} == {3}
    for root, config in configs.items():
        reference = _reference(teacher, features, config.temperature)["s1-a-0001"].exp()
        got = TeacherStore(root).utterance("s1-a-0001")
        expected = reference if config.dense else reference.topk(config.top_k).values
        assert torch.allclose(got if config.dense else got.probs, expected, rtol=2e-3, atol=1e-4)
    (tmp_path / "T5_k3" / "probs" / "shard-00002.index.tsv").unlink()
    again = dump_teacher_stores(teacher, features, configs, utts_per_shard=2, progress=False)
    assert [again[root].shards_written for root in configs] == [0, 0, 1]


def test_rerun_skips_finished_shards_and_refuses_other_settings(tmp_path, features, teacher):
    config = TeacherStoreConfig(temperature=2.0, num_senones=NUM_SENONES, top_k=3)
    out = tmp_path / "store"
    dump_teacher(teacher, features, out, config, utts_per_shard=2, progress=False)
    # simulate a kill after the ids shard but before the probs shard of shard 1
    (out / "probs" / "shard-00001.index.tsv").unlink()
    again = dump_teacher(teacher, features, out, config, utts_per_shard=2, progress=False)
    assert (again.shards_written, again.shards_skipped, again.utterances) == (1, 2, 5)
    with pytest.raises(AsrKdError, match="different configuration"):
        dump_teacher(teacher, features, out, TeacherStoreConfig(5.0, NUM_SENONES, top_k=3), progress=False)
    with pytest.raises(AsrKdError, match="another utterance list or --utts-per-shard"):
        dump_teacher(teacher, features, out, config, utts_per_shard=3, progress=False)


def test_teacher_targets_follow_frame_table_order(tmp_path, features, teacher):
    config = TeacherStoreConfig(temperature=2.0, num_senones=NUM_SENONES, top_k=6)
    dump_teacher(teacher, features, tmp_path / "store", config, utts_per_shard=2, progress=False)
    order = ["s3-c-0001", "s1-a-0002", "s2-b-0001"]  # not the store's order, a subset
    table = FrameTable(features, order)
    targets = TeacherTargets.load(tmp_path / "store", table)
    assert len(targets) == len(table) and targets.temperature == 2.0
    store = TeacherStore(tmp_path / "store")
    frame_index = torch.tensor([0, 11, 12, 13, 17, len(table) - 1])  # 12 + 5 + 23 frames
    got = targets.gather(frame_index)
    assert got.ids.dtype == torch.int64 and got.probs.dtype == torch.float32
    expected = [store.utterance("s3-c-0001").ids[0], store.utterance("s3-c-0001").ids[11],
                store.utterance("s1-a-0002").ids[0], store.utterance("s1-a-0002").ids[1],
                store.utterance("s2-b-0001").ids[0], store.utterance("s2-b-0001").ids[-1]]
    assert torch.equal(got.ids, torch.stack(expected))


def test_dense_teacher_targets_gather(tmp_path, features, teacher):
    dump_teacher(teacher, features, tmp_path / "dense", TeacherStoreConfig(1.0, NUM_SENONES, top_k=None),
                 progress=False)
    table = FrameTable(features)
    got = TeacherTargets.load(tmp_path / "dense", table).gather(torch.arange(len(table)))
    assert got.shape == (len(table), NUM_SENONES) and got.dtype == torch.float32
    assert torch.allclose(got.sum(-1), torch.ones(len(table)), atol=5e-3)


def test_frame_count_mismatch_names_the_utterance(tmp_path, features, teacher, utt_lengths, make_feature_dir):
    dump_teacher(teacher, features, tmp_path / "store", TeacherStoreConfig(1.0, NUM_SENONES, top_k=2), progress=False)
    other = FeatureSet(make_feature_dir(tmp_path / "other", {**utt_lengths, "s2-b-0002": 10}))
    with pytest.raises(AsrKdError, match=r"s2-b-0002: 10 frames in the feature table but 9"):
        TeacherTargets.load(tmp_path / "store", FrameTable(other))
    extra = FeatureSet(make_feature_dir(tmp_path / "extra", {**utt_lengths, "s9-z-0001": 4}))
    with pytest.raises(AsrKdError, match=r"1 of 6 utterances have no teacher targets.*s9-z-0001"):
        TeacherTargets.load(tmp_path / "store", FrameTable(extra))


def test_unknown_or_repeated_utterances_are_refused(tmp_path, features, teacher):
    config = TeacherStoreConfig(1.0, NUM_SENONES, top_k=2)
    with pytest.raises(AsrKdError, match=r"1 ids without features \(e.g. \['nope'\]\)"):
        dump_teacher(teacher, features, tmp_path / "a", config, utt_ids=["s1-a-0001", "nope"], progress=False)
    with pytest.raises(AsrKdError, match="duplicates"):
        dump_teacher(teacher, features, tmp_path / "b", config, utt_ids=["s1-a-0001"] * 2, progress=False)


def test_not_a_store(tmp_path):
    with pytest.raises(AsrKdError, match="not a teacher store"):
        TeacherStore(tmp_path)


def test_bytes_per_frame_top_k_vs_dense():
    assert bytes_per_frame(2000, None) == 4000
    assert [bytes_per_frame(2000, k) for k in (1, 10, 50)] == [4, 40, 200]
    assert bytes_per_frame(70000, 10) == 60  # int32 ids past 32768 senones
    with pytest.raises(AsrKdError, match="top_k must be in 1..10"):
        bytes_per_frame(10, 11)
    with pytest.raises(AsrKdError, match="temperature"):
        TeacherStoreConfig(0.0, 10)
