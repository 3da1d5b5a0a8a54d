"""Senone clusters from the covariance of a generalist's predictions (covariance, kmeans, clusters)."""

import pytest
import torch

from asr_kd.distillation.specialists.clusters import SenoneClusters, confusable_clusters
from asr_kd.distillation.specialists.covariance import CovarianceAccumulator
from asr_kd.distillation.specialists.kmeans import kmeans
from asr_kd.utils.errors import AsrKdError

GROUPS = [[0, 5, 10, 15], [1, 6, 11, 16], [2, 7, 12, 17], [3, 8, 13, 18], [4, 9, 14, 19]]


def _confused_predictions(frames: int, seed: int = 0) -> torch.Tensor:
    """``(frames, 20)`` distributions: each frame's mass spread over the senones of one planted group."""
    gen = torch.Generator().manual_seed(seed)
    probs = torch.full((frames, 20), 1e-3)
    for n, g in enumerate(torch.randint(len(GROUPS), (frames,), generator=gen).tolist()):
        probs[n, GROUPS[g]] += torch.distributions.Dirichlet(torch.ones(4)).sample()
    return probs / probs.sum(1, keepdim=True)


def test_streamed_covariance_equals_the_covariance_of_all_frames():
    probs = _confused_predictions(300)
    acc = CovarianceAccumulator(20)
    for chunk in probs.split(37):
        acc.update(chunk)
    assert acc.frames == 300
    assert acc.covariance() == pytest.approx(torch.cov(probs.double().T), abs=1e-12)


@pytest.mark.parametrize("column_norm", ["none", "l2"])
def test_kmeans_on_covariance_columns_recovers_planted_confusable_groups(column_norm):
    acc = CovarianceAccumulator(20)
    acc.update(_confused_predictions(2000))
    clusters = confusable_clusters(acc.covariance(), num_clusters=5, cluster_size=4, seed=0, column_norm=column_norm)
    assert sorted(map(list, clusters)) == GROUPS
    assert clusters == confusable_clusters(acc.covariance(), 5, 4, seed=0, column_norm=column_norm)  # seeded


def test_clusters_larger_than_a_group_take_it_whole_and_overlap_only_beyond_it():
    acc = CovarianceAccumulator(20)
    acc.update(_confused_predictions(2000))
    clusters = confusable_clusters(acc.covariance(), 5, 6, seed=1)
    assert sorted(g for c in clusters for g in GROUPS if set(g) <= set(c)) == GROUPS  # each holds its group
    coverage = SenoneClusters(20, tuple(clusters)).coverage()
    assert int(coverage.sum()) == 30 and int(coverage.min()) >= 1 and int(coverage.max()) >= 2


def test_smaller_clusters_are_disjoint_cores_of_the_groups():
    acc = CovarianceAccumulator(20)
    acc.update(_confused_predictions(2000))
    clusters = confusable_clusters(acc.covariance(), 5, 2, seed=0)
    assert len({s for c in clusters for s in c}) == 10  # no overlap
    assert all(any(set(c) <= set(g) for g in GROUPS) for c in clusters)


def test_kmeans_finds_separated_blobs_deterministically():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = torch.cat([c + torch.randn(30, 2, generator=gen) for c in centres])
    result = kmeans(points, 3, seed=4)
    assert sorted(torch.bincount(result.labels).tolist()) == [30, 30, 30]
    for blob in range(3):
        assert len(set(result.labels[blob * 30:(blob + 1) * 30].tolist())) == 1
    again = kmeans(points, 3, seed=4)
    assert torch.equal(again.labels, result.labels)


def test_clusters_json_round_trip_and_bad_clusters(tmp_path):
    clusters = SenoneClusters(10, ((1, 2), (2, 7, 9)), {"generalist": "g.pt", "seed": 3})
    clusters.save(tmp_path / "c.json")
    again = SenoneClusters.load(tmp_path / "c.json")
    assert again == clusters
    assert again.coverage().tolist() == [0, 1, 2, 0, 0, 0, 0, 1, 0, 1]
    with pytest.raises(AsrKdError, match="distinct senone ids in 0..9"):
        SenoneClusters(10, ((1, 10),))
    with pytest.raises(AsrKdError, match="dustbin"):
        SenoneClusters(3, ((0, 1, 2),))
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(AsrKdError, match="not a senone clusters file"):
        SenoneClusters.load(tmp_path / "bad.json")
    with pytest.raises(AsrKdError, match="--cluster-size must lie in 1..19"):
        confusable_clusters(torch.eye(20, dtype=torch.float64), 2, 20)
