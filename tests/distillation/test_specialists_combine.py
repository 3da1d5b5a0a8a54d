"""The KL combination of a generalist with specialists (asr_kd.distillation.specialists.combine)."""

import pytest
import torch

from asr_kd.distillation.specialists.combine import (
    METHODS,
    Opinion,
    active_specialists,
    combination_loss,
    combine,
    project,
)

S = 12


def _generalist(n: int, seed: int = 0) -> torch.Tensor:
    return torch.log_softmax(torch.randn(n, S, generator=torch.Generator().manual_seed(seed)) * 2, -1)


def _cluster(*senones: int) -> torch.Tensor:
    return torch.tensor(senones)


def test_projection_keeps_the_cluster_and_folds_the_rest_into_the_dustbin():
    log_q = _generalist(3)
    cluster = _cluster(2, 5, 7)
    projected = project(log_q, cluster).exp()
    q = log_q.exp()
    assert projected[:, :3] == pytest.approx(q[:, [2, 5, 7]], abs=1e-6)
    assert projected[:, 3] == pytest.approx(1 - q[:, [2, 5, 7]].sum(1), abs=1e-6)
    assert projected.sum(1) == pytest.approx(torch.ones(3), abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_a_specialist_agreeing_with_the_generalist_leaves_it_unchanged(method):
    log_g = _generalist(5)
    cluster = _cluster(1, 3, 4, 9)
    agreeing = project(log_g, cluster)  # the generalist's own view of the cluster
    result = combine(log_g, [Opinion(torch.arange(5), cluster, agreeing)], method=method)
    assert result.log_q.exp() == pytest.approx(log_g.exp(), abs=1e-5)
    assert result.max_grad < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_frames_without_an_active_specialist_keep_the_generalist(method):
    log_g = _generalist(6)
    cluster = _cluster(0, 1)
    confident = torch.log(torch.tensor([[0.97, 0.02, 0.01]] * 2))
    result = combine(log_g, [Opinion(torch.tensor([1, 4]), cluster, confident)], method=method)
    untouched = torch.tensor([0, 2, 3, 5])
    assert torch.equal(result.log_q[untouched], log_g[untouched])
    assert not torch.allclose(result.log_q[[1, 4]], log_g[[1, 4]], atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_one_specialist_matches_the_closed_form_and_keeps_the_cluster_mass(method):
    """One active specialist: q_c = (p_g(c) + p_m(c)) / 2 in the cluster, the generalist's shape outside."""
    log_g = _generalist(4, seed=3)
    cluster = _cluster(2, 6, 8)
    g = log_g.exp()
    in_mass = g[:, cluster].sum(1, keepdim=True)
    # confident inside the cluster (90% of its mass on senone 6), same cluster mass as the generalist
    shape = torch.tensor([0.05, 0.9, 0.05])
    p_m = torch.cat([in_mass * shape, 1 - in_mass], 1)
    result = combine(log_g, [Opinion(torch.arange(4), cluster, p_m.log())], method=method)
    q = result.log_q.exp()
    assert q[:, cluster] == pytest.approx((g[:, cluster] + p_m[:, :3]) / 2, abs=1e-4)
    outside = torch.ones(S, dtype=torch.bool)
    outside[cluster] = False
    expected_out = g[:, outside] / g[:, outside].sum(1, keepdim=True) * (1 - in_mass)
    assert q[:, outside] == pytest.approx(expected_out, abs=1e-4)
    assert q[:, cluster].sum(1) == pytest.approx(in_mass.squeeze(1), abs=1e-4)  # cluster mass kept
    # the mass inside moves half way towards the specialist's shape (here 90% on senone 6)
    share_g, share_q = g[:, 6] / in_mass.squeeze(1), q[:, 6] / q[:, cluster].sum(1)
    assert share_q == pytest.approx((share_g + 0.9) / 2, abs=1e-4)
    assert share_g.min() < 0.5 and (share_q[share_g < 0.9] > share_g[share_g < 0.9]).all()


@pytest.mark.parametrize("method", METHODS)
def test_overlapping_specialists_reach_a_stationary_point(method):
    log_g = _generalist(8, seed=5)
    gen = torch.Generator().manual_seed(1)
    opinions = []
    for cluster in (_cluster(0, 1, 2, 3), _cluster(2, 3, 4), _cluster(7, 8, 9, 10, 11)):
        rows = torch.tensor([0, 2, 3, 5, 7]) if len(cluster) != 3 else torch.tensor([1, 2, 3, 6])
        opinions.append(Opinion(rows, cluster, torch.log_softmax(torch.randn(len(rows), len(cluster) + 1,
                                                                              generator=gen) * 3, -1)))
    result = combine(log_g, opinions, max_steps=300, tolerance=1e-8, method=method)
    z = result.log_q.clone().requires_grad_(True)
    combination_loss(z, log_g, opinions).sum().backward()
    assert z.grad.abs().max() < 1e-5 and result.max_grad < 1e-5
    assert result.log_q.exp().sum(1) == pytest.approx(torch.ones(8), abs=1e-5)
    # the optimum is no worse than either starting point
    start = combination_loss(log_g, log_g, opinions).sum()
    assert combination_loss(result.log_q, log_g, opinions).sum() < start


def test_active_specialists_are_those_holding_a_top_n_senone():
    log_g = torch.log_softmax(torch.tensor([[5.0, 4.0, 0.0, 0.0], [0.0, 0.0, 1.0, 5.0]]), -1)
    membership = torch.tensor([[True, False, False, False], [False, True, True, False], [False, False, False, True]])
    assert active_specialists(log_g, membership, 1).tolist() == [[True, False, False], [False, False, True]]
    assert active_specialists(log_g, membership, 2).tolist() == [[True, True, False], [False, True, True]]
