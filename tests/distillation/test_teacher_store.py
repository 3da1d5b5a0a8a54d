import numpy as np
import pytest
import torch

from asr_kd.distillation.accounting import bytes_per_frame
from asr_kd.distillation.lowrank import LowRankTargets
from asr_kd.distillation.soft_targets import TopKTargets, ensemble_soft_targets
from asr_kd.distillation.teacher_store import (
    TeacherStore,
    TeacherStoreConfig,
    TeacherTargets,
    dump_teacher,
    dump_teacher_stores,
    fit_sample,
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


LOWRANK = dict(top_k=4, rank=6, temperatures=(1.0, 2.0, 5.0, 10.0), fit_frames=12)


def test_lowrank_store_serves_every_dumped_temperature_from_one_pass(tmp_path, features, teacher, utt_lengths):
    config = TeacherStoreConfig(1.0, NUM_SENONES, **LOWRANK)
    summary = dump_teacher(teacher, features, tmp_path / "lr", config, utts_per_shard=2, progress=False)
    assert (summary.utterances, summary.shards_written) == (5, 3)
    store = TeacherStore(tmp_path / "lr")
    assert store.config == config and store.config.kind == "lowrank"
    assert store.config.served_temperatures == (1.0, 2.0, 5.0, 10.0)
    assert {n: s.dtype for n, s in store.fields.items()} == {"ids": np.int16, "logp": np.float16, "coef": np.uint8,
                                                              "tail": np.float16}
    assert 0 < len(store.fit_utts) < 5 and store.basis.rank == 6
    # 4 x (int16 id + fp16 log-prob) + 2 x 8-bit and 4 x 4-bit codes + 4 x fp16 tail mass
    assert config.bytes_per_frame == bytes_per_frame(NUM_SENONES, 4, rank=6, num_temperatures=4) == 16 + 4 + 8
    for t in config.served_temperatures:
        reference = _reference(teacher, features, t)
        for utt_id, n in utt_lengths.items():
            targets = store.utterance(utt_id)
            assert isinstance(targets, LowRankTargets) and targets.ids.shape == (n, 4)
            top, ids = reference[utt_id].exp().topk(4, dim=-1)
            probs = targets.probs(t)
            if t == 1.0:
                assert torch.equal(targets.ids, ids)  # the top-k is chosen at T0 = 1
            # the stored top-k keep their exact probabilities at every T (one model)
            assert torch.allclose(probs.gather(1, targets.ids), reference[utt_id].exp().gather(1, targets.ids),
                                  rtol=5e-3, atol=1e-4)
            assert torch.allclose(probs.sum(-1), torch.ones(n), atol=1e-4)
    assert store.mean_kept_mass() is None
    masses = store.mean_top_k_mass()
    assert list(masses) == [1.0, 2.0, 5.0, 10.0] and masses[1.0] > masses[10.0] > 0


def test_lowrank_store_resumes_with_the_same_basis(tmp_path, features, teacher):
    config = TeacherStoreConfig(1.0, NUM_SENONES, **LOWRANK)
    out = tmp_path / "lr"
    dump_teacher(teacher, features, out, config, utts_per_shard=2, progress=False)
    basis = (out / "basis.npz").read_bytes()
    first = TeacherStore(out).utterance("s2-b-0002").probs(5.0)
    # a kill after coef/ but before tail/ (the marker) of shard 1; the basis is never refitted
    (out / "tail" / "shard-00001.index.tsv").unlink()
    (out / "tail" / "shard-00001.npy").unlink()
    again = dump_teacher(teacher, features, out, config, utts_per_shard=2, progress=False)
    assert (again.shards_written, again.shards_skipped) == (1, 2)
    assert (out / "basis.npz").read_bytes() == basis
    assert torch.equal(TeacherStore(out).utterance("s2-b-0002").probs(5.0), first)
    with pytest.raises(AsrKdError, match="different configuration"):
        dump_teacher(teacher, features, out, TeacherStoreConfig(1.0, NUM_SENONES, **{**LOWRANK, "rank": 5}),
                     progress=False)
    (out / "basis.npz").unlink()
    with pytest.raises(AsrKdError, match="missing PCA basis"):
        TeacherStore(out)


def test_one_pass_writes_lowrank_and_top_k_stores(tmp_path, features, teacher):
    configs = {tmp_path / "lr": TeacherStoreConfig(1.0, NUM_SENONES, **LOWRANK),
               tmp_path / "T2_k5": TeacherStoreConfig(2.0, NUM_SENONES, top_k=5)}
    dump_teacher_stores(teacher, features, configs, utts_per_shard=2, progress=False)
    top = TeacherStore(tmp_path / "T2_k5").utterance("s1-a-0001")
    low = TeacherStore(tmp_path / "lr").utterance("s1-a-0001").probs(2.0)
    assert torch.allclose(low.gather(1, top.ids[:, :4]), top.probs[:, :4], rtol=5e-3, atol=1e-4)


def test_lowrank_teacher_targets_stay_compact_in_ram(tmp_path, features, teacher):
    dump_teacher(teacher, features, tmp_path / "lr", TeacherStoreConfig(1.0, NUM_SENONES, **LOWRANK), progress=False)
    table = FrameTable(features, ["s3-c-0001", "s1-a-0002"])
    targets = TeacherTargets.load(tmp_path / "lr", table)
    assert len(targets) == 17 and targets.probs is None and targets.ids.dtype == torch.int16
    assert {n: a.dtype for n, a in targets.fields.items()} == {"ids": torch.int16, "logp": torch.float16,
                                                               "coef": torch.uint8, "tail": torch.float16}
    got = targets.gather(torch.tensor([0, 12, 16]))
    store = TeacherStore(tmp_path / "lr")
    expected = torch.cat([store.utterance("s3-c-0001").probs(2.0)[:1], store.utterance("s1-a-0002").probs(2.0)[[0, 4]]])
    assert isinstance(got, LowRankTargets) and torch.allclose(got.probs(2.0), expected)


def test_dense_and_top_k_metas_are_unchanged_by_the_lowrank_kind():
    # stores dumped before the low-rank kind existed must still open, and reruns must still match
    legacy = {"kind", "temperature", "num_senones", "top_k", "combine", "teachers", "features"}
    assert set(TeacherStoreConfig(2.0, NUM_SENONES, top_k=5).to_meta()) == legacy
    assert set(TeacherStoreConfig(2.0, NUM_SENONES, top_k=None).to_meta()) == legacy
    assert TeacherStoreConfig.from_meta(TeacherStoreConfig(2.0, NUM_SENONES, top_k=5).to_meta(), "x").kind == "topk"
    with pytest.raises(AsrKdError, match="only a low-rank store serves several temperatures"):
        TeacherStoreConfig(2.0, NUM_SENONES, top_k=5, temperatures=(1.0, 2.0))
    with pytest.raises(AsrKdError, match="a low-rank store needs top_k < 24"):
        TeacherStoreConfig(1.0, NUM_SENONES, top_k=None, rank=3)
    with pytest.raises(AsrKdError, match="rank must be in 0..23"):
        TeacherStoreConfig(1.0, NUM_SENONES, top_k=4, rank=24)


def test_fit_sample_is_seeded_and_spread_over_utterances(features):
    sample = fit_sample(features, features.utt_ids(), num_frames=10)
    assert sample.keys() == fit_sample(features, features.utt_ids(), num_frames=10).keys()
    assert sum(len(v) for v in sample.values()) == 10 and len(sample) >= 2
    for utt_id, rows in sample.items():
        assert (np.diff(rows) > 0).all() and rows.max() < features.store.num_rows(utt_id)
