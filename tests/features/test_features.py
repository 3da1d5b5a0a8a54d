import os
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_kd.data import read_manifest
from asr_kd.data.audio import num_frames, read_audio
from asr_kd.experiment import Experiment
from asr_kd.features.cmvn import Cmvn
from asr_kd.features.dataset import (
    IGNORE_INDEX,
    FeatureSet,
    FrameTable,
    UtteranceDataset,
    batches_by_frames,
    collate_utterances,
)
from asr_kd.features.extract import extract_features
from asr_kd.features.fbank import FbankConfig, compute_fbank
from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter
from asr_kd.utils.errors import AsrKdError

TRAIN = "train-clean-5"


def test_fbank_shape_and_frame_count() -> None:
    samples = np.random.default_rng(0).normal(scale=0.1, size=16000).astype(np.float32)
    feats = compute_fbank(samples, FbankConfig(num_mel_bins=80))
    assert feats.shape == (num_frames(16000), 80) == (98, 80)
    assert torch.isfinite(feats).all()


def test_features_match_kaldi_framing_and_manifest(tiny_exp: Path) -> None:
    utts = read_manifest(Experiment(tiny_exp).manifest(TRAIN))
    store = ArrayStore(tiny_exp / "feats" / TRAIN)
    assert len(store) == len(utts)
    for utt in utts[:3]:
        assert store[utt.utt_id].shape == (num_frames(utt.num_samples), 40)
    utt = utts[0]
    again = compute_fbank(read_audio(utt.audio_path)).numpy()
    np.testing.assert_array_equal(store[utt.utt_id], again)
    assert store.meta["fbank"]["num_mel_bins"] == 40


def test_cmvn_per_speaker_normalises(tiny_exp: Path) -> None:
    features = FeatureSet(tiny_exp / "feats" / TRAIN, cmvn_mode="speaker")
    by_speaker: dict[str, list[np.ndarray]] = {}
    for utt_id in features.utt_ids():
        by_speaker.setdefault(features.utt2spk[utt_id], []).append(features[utt_id])
    frames = np.concatenate(next(iter(by_speaker.values())))
    np.testing.assert_allclose(frames.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(frames.std(axis=0), 1, atol=1e-3)
    glob = FeatureSet(tiny_exp / "feats" / TRAIN, cmvn_mode="global")
    all_frames = np.concatenate([glob[u] for u in glob.utt_ids()])
    np.testing.assert_allclose(all_frames.mean(axis=0), 0, atol=1e-4)


def test_cmvn_save_load(tiny_exp: Path, tmp_path: Path) -> None:
    cmvn = Cmvn.load(tiny_exp / "feats" / TRAIN / "cmvn.npz")
    cmvn.save(tmp_path / "c.npz")
    again = Cmvn.load(tmp_path / "c.npz")
    assert again.speakers.keys() == cmvn.speakers.keys()
    np.testing.assert_allclose(again.global_stats.sum, cmvn.global_stats.sum)


def test_rerun_skips_finished_shards_and_resumes(tiny_exp: Path, tmp_path: Path) -> None:
    utts = read_manifest(Experiment(tiny_exp).manifest(TRAIN))[:6]
    out = tmp_path / "feats"
    first = extract_features(utts, out, num_workers=1, utts_per_shard=2, progress=False)
    assert (first.shards_written, first.shards_skipped) == (3, 0)
    (out / "shard-00001.index.tsv").unlink()  # as if killed before finishing shard 1
    second = extract_features(utts, out, num_workers=1, utts_per_shard=2, progress=False)
    assert (second.shards_written, second.shards_skipped) == (1, 2)
    assert second.utterances == 6
    with pytest.raises(AsrKdError, match="different configuration"):
        extract_features(utts, out, FbankConfig(num_mel_bins=80), num_workers=1, utts_per_shard=2, progress=False)


def test_parallel_extraction_equals_serial(tiny_exp: Path, tmp_path: Path) -> None:
    utts = read_manifest(Experiment(tiny_exp).manifest(TRAIN))[:4]
    extract_features(utts, tmp_path / "a", num_workers=2, utts_per_shard=1, progress=False)
    a, b = ArrayStore(tmp_path / "a"), ArrayStore(tiny_exp / "feats" / TRAIN)
    for utt in utts:
        np.testing.assert_array_equal(a[utt.utt_id], b[utt.utt_id])


def test_truncated_audio_fails_with_file_name(tiny_exp: Path, tmp_path: Path) -> None:
    import dataclasses

    utt = read_manifest(Experiment(tiny_exp).manifest(TRAIN))[0]
    lying = dataclasses.replace(utt, num_samples=utt.num_samples + 1600)
    with pytest.raises(AsrKdError, match=Path(utt.audio_path).name):
        extract_features([lying], tmp_path / "f", num_workers=1, progress=False)


def fake_targets(features: FeatureSet, root: Path, drop_last_frame_of: str | None = None) -> ArrayStore:
    writer = ArrayStoreWriter(root, "int32", ())
    items = []
    for utt_id in features.utt_ids():
        n = len(features.store[utt_id]) - (utt_id == drop_last_frame_of)
        items.append((utt_id, np.arange(n) % 7))
    writer.write_shard(0, items)
    return ArrayStore(root)


def test_utterance_batches_are_padded(tiny_exp: Path, tmp_path: Path) -> None:
    features = FeatureSet(tiny_exp / "feats" / TRAIN)
    dataset = UtteranceDataset(features, targets=fake_targets(features, tmp_path / "t"))
    batch = collate_utterances([dataset[0], dataset[1]])
    b, t, d = batch["feats"].shape
    assert (b, d) == (2, 40) and t == int(batch["lengths"].max())
    short = int(batch["lengths"].argmin())
    assert (batch["targets"][short, batch["lengths"][short]:] == IGNORE_INDEX).all()
    assert (batch["feats"][short, batch["lengths"][short]:] == 0).all()


def test_frame_mismatch_is_an_error(tiny_exp: Path, tmp_path: Path) -> None:
    features = FeatureSet(tiny_exp / "feats" / TRAIN)
    victim = features.utt_ids()[2]
    targets = fake_targets(features, tmp_path / "t", drop_last_frame_of=victim)
    with pytest.raises(AsrKdError, match=victim):
        FrameTable(features, targets=targets)


def test_frame_table_context_windows_clamp_at_utterance_edges(tiny_exp: Path, tmp_path: Path) -> None:
    features = FeatureSet(tiny_exp / "feats" / TRAIN)
    ids = features.utt_ids()[:2]
    table = FrameTable(features, ids, targets=fake_targets(features, tmp_path / "t"))
    first_of_second = int(table.offsets[1])
    windows = table.context_windows(torch.tensor([first_of_second, first_of_second + 5]), left=3, right=2)
    assert windows.shape == (2, 6, 40)
    second = torch.from_numpy(features[ids[1]])
    for k in range(4):  # left context of the first frame repeats that frame, not the previous utterance
        torch.testing.assert_close(windows[0, k], second[0])
    torch.testing.assert_close(windows[1], second[2:8])
    seen = torch.cat(list(table.minibatches(1000, seed=0)))
    assert sorted(seen.tolist()) == list(range(len(table)))


def test_batches_by_frames_respects_budget() -> None:
    lengths = [100, 300, 120, 280, 90, 500]
    batches = batches_by_frames(lengths, max_frames=600, shuffle=True, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert max(lengths[i] for i in b) * len(b) <= 600 or len(b) == 1


def test_changed_audio_is_recomputed_not_reused(tiny_exp: Path, tmp_path: Path) -> None:
    """Replacing a FLAC and preparing again must not keep the shard of the old audio (issue 14.7)."""
    import dataclasses
    import shutil

    utts = [dataclasses.replace(u, audio_path=str(shutil.copy(u.audio_path, tmp_path / Path(u.audio_path).name)))
            for u in read_manifest(Experiment(tiny_exp).manifest(TRAIN))[:4]]
    out = tmp_path / "feats"
    extract_features(utts, out, num_workers=1, utts_per_shard=2, progress=False)
    victim, other = utts[3], utts[0]
    shutil.copy(other.audio_path, victim.audio_path)  # new audio of another length, same file name
    os.utime(victim.audio_path, ns=(1, 1))  # even with an older mtime: the size and mtime differ
    utts[3] = dataclasses.replace(victim, num_samples=other.num_samples, duration_s=other.duration_s)  # prepare again
    again = extract_features(utts, out, num_workers=1, utts_per_shard=2, progress=False)
    assert ArrayStore(out)[victim.utt_id].shape[0] == num_frames(other.num_samples)
    assert (again.shards_written, again.shards_redone, again.shards_skipped) == (1, 1, 1)


@pytest.mark.skipif(not Path("/proc/self/task").exists() or (os.cpu_count() or 1) < 2,
                    reason="reads /proc; the default --jobs makes a pool only with 2+ cores")
def test_kill_9_of_features_leaves_no_orphaned_workers(tiny_exp: Path, tmp_path: Path) -> None:
    """``kill -9`` of ``asr-kd features`` with the default --jobs: its pool workers die too (issue 14.4)."""
    import dataclasses
    import subprocess
    import sys

    from asr_kd.data import write_manifest
    from tests.utils.test_processes import kill_and_check_workers_die

    utts = read_manifest(Experiment(tiny_exp).manifest(TRAIN))
    many = [dataclasses.replace(u, utt_id=f"{u.utt_id}-{k}") for k in range(40) for u in utts]  # ~1.1 h of audio
    exp = tmp_path / "exp"
    write_manifest(Experiment(exp).manifest("many"), many)
    proc = subprocess.Popen([sys.executable, "-m", "asr_kd.cli", "features", "--exp", str(exp), "--subsets", "many",
                             "--utts-per-shard", "4"], stderr=subprocess.DEVNULL)
    kill_and_check_workers_die(proc, 2)
