"""A specialist's frames, dustbin targets, initialisation and dustbin correction."""

import math

import pytest
import torch

from asr_kd.distillation.specialists.model import initialise_from_generalist, raise_dustbin
from asr_kd.distillation.specialists.targets import class_map, dustbin_log_correction, specialist_targets
from asr_kd.features.dataset import IGNORE_INDEX
from asr_kd.models import build

S = 10


def test_class_map_folds_other_senones_into_the_dustbin():
    assert class_map([7, 2, 4], S).tolist() == [3, 3, 1, 3, 2, 3, 3, 0, 3, 3]


def test_sample_mixes_cluster_frames_one_to_one_with_random_others():
    gen = torch.Generator().manual_seed(0)
    targets = torch.randint(S, (5000,), generator=gen)
    targets[:10] = IGNORE_INDEX  # e.g. padding: never sampled
    mapped, counts = specialist_targets(targets, [3, 8], S, other_ratio=1.0, seed=1)
    in_cluster = (targets == 3) | (targets == 8)
    assert counts.in_cluster == int(in_cluster.sum())
    assert counts.others == int(((targets != IGNORE_INDEX) & ~in_cluster).sum())
    kept = mapped != IGNORE_INDEX
    assert int((mapped == 2).sum()) == counts.others_kept == counts.in_cluster  # 1:1
    assert torch.equal(mapped[targets == 3], torch.zeros(int((targets == 3).sum()), dtype=torch.int64))
    assert (mapped[targets == 8] == 1).all()
    assert not kept[:10].any()
    assert counts.oversampling_ratio == pytest.approx(counts.others / counts.in_cluster)
    again, _ = specialist_targets(targets, [3, 8], S, other_ratio=1.0, seed=1)
    assert torch.equal(again, mapped)
    other_seed, _ = specialist_targets(targets, [3, 8], S, other_ratio=1.0, seed=2)
    assert not torch.equal(other_seed, mapped)
    _, half = specialist_targets(targets, [3, 8], S, other_ratio=0.5, seed=1)
    assert half.others_kept == math.ceil(0.5 * half.in_cluster)


def test_dustbin_correction_restores_the_data_priors():
    """A specialist that learnt the training sample's class frequencies exactly (an input-free model),
    corrected by log r, predicts the frequencies of the full data."""
    targets = torch.tensor([0] * 30 + [1] * 10 + [2] * 5 + list(range(3, S)) * 50)  # cluster {0, 1, 2}: 45 frames
    mapped, counts = specialist_targets(targets, [0, 1, 2], S, seed=0)
    assert (counts.in_cluster, counts.others_kept, counts.others) == (45, 45, 350)
    sample = mapped[mapped != IGNORE_INDEX]
    train_freq = torch.bincount(sample, minlength=4).double() / len(sample)
    logits = train_freq.log()
    logits[3] += dustbin_log_correction(counts)
    natural = torch.bincount(class_map([0, 1, 2], S)[targets], minlength=4).double() / len(targets)
    assert torch.softmax(logits, 0) == pytest.approx(natural, abs=1e-12)


@torch.no_grad()
def test_specialist_starts_with_the_generalists_cluster_logits():
    torch.manual_seed(0)
    generalist = build("dnn", "tiny", input_dim=8, num_senones=S).eval()
    cluster = [1, 4, 6]
    specialist = build("dnn", "tiny", input_dim=8, num_senones=len(cluster) + 1).eval()
    initialise_from_generalist(specialist, generalist, cluster)
    windows = torch.randn(20, 6, 8)
    z_g, z_s = generalist(windows), specialist(windows)
    assert z_s[:, :3] == pytest.approx(z_g[:, cluster], abs=1e-5)
    others = [s for s in range(S) if s not in cluster]
    # dustbin = mean of the other logits + log(7): a lower bound of their logsumexp (Jensen)
    assert z_s[:, 3] == pytest.approx(z_g[:, others].mean(1) + math.log(7), abs=1e-5)
    assert (z_s[:, 3] <= torch.logsumexp(z_g[:, others], 1) + 1e-5).all()
    raise_dustbin(specialist, 0.5)
    assert specialist(windows)[:, 3] == pytest.approx(z_s[:, 3] + 0.5, abs=1e-5)


def test_relabelled_frame_table_draws_only_the_sampled_frames(features):
    from asr_kd.features.dataset import FrameTable

    table = FrameTable(features)
    targets = torch.full((len(table),), IGNORE_INDEX, dtype=torch.int64)
    targets[::3] = 1
    view = table.relabelled(targets)
    drawn = torch.cat(list(view.minibatches(7, seed=0)))
    assert sorted(drawn.tolist()) == list(range(0, len(table), 3))
    assert view.feats is table.feats and table.selected is None
    assert len(torch.cat(list(table.minibatches(7, seed=0)))) == len(table)
