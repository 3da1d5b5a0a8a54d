import math

import pytest
import torch

from asr_kd.distillation.loss import distillation_loss, hard_cross_entropy, soft_cross_entropy
from asr_kd.distillation.soft_targets import TopKTargets, soft_targets, top_k_targets
from asr_kd.features.dataset import IGNORE_INDEX

# 2 frames, 3 senones, everything below is computed by hand from these numbers.
Z = [[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]]
P = [[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]]
HARD = [0, 2]


def _hand_soft_ce(temperature: float) -> float:
    total = 0.0
    for z, p in zip(Z, P):
        log_norm = math.log(sum(math.exp(v / temperature) for v in z))
        total -= sum(pi * (zi / temperature - log_norm) for zi, pi in zip(z, p))
    return total / len(Z)


def _hand_hard_ce() -> float:
    return -sum(z[y] - math.log(sum(math.exp(v) for v in z)) for z, y in zip(Z, HARD)) / len(Z)


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (2.0, 0.5), (5.0, 1.0), (3.0, 0.0), (2.0, 0.25)])
def test_loss_matches_hand_computation(temperature, alpha):
    terms = distillation_loss(torch.tensor(Z), torch.tensor(P), torch.tensor(HARD), temperature, alpha)
    soft, hard = _hand_soft_ce(temperature), _hand_hard_ce()
    assert terms.soft.item() == pytest.approx(soft, rel=1e-5)
    assert terms.hard.item() == pytest.approx(hard, rel=1e-5)
    assert terms.loss.item() == pytest.approx(alpha * temperature**2 * soft + (1 - alpha) * hard, rel=1e-5)
    # hand values at T = 2 for the record: soft 0.98945, hard 0.75310
    if temperature == 2.0 and alpha == 0.5:
        assert terms.loss.item() == pytest.approx(0.5 * 4 * 0.98945 + 0.5 * 0.75310, abs=1e-4)


def test_pure_soft_and_pure_hard_need_only_their_targets():
    z = torch.tensor(Z)
    soft_only = distillation_loss(z, torch.tensor(P), None, 2.0, alpha=1.0)
    assert soft_only.hard is None and soft_only.loss.item() == pytest.approx(4 * _hand_soft_ce(2.0), rel=1e-5)
    hard_only = distillation_loss(z, None, torch.tensor(HARD), 2.0, alpha=0.0)
    assert hard_only.soft is None and hard_only.loss.item() == pytest.approx(_hand_hard_ce(), rel=1e-5)
    with pytest.raises(ValueError, match="soft targets"):
        distillation_loss(z, None, torch.tensor(HARD), 2.0, alpha=0.5)
    with pytest.raises(ValueError, match="hard targets"):
        distillation_loss(z, torch.tensor(P), None, 2.0, alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(z, torch.tensor(P), None, 2.0, alpha=1.5)


def test_hard_term_ignores_ignore_index_frames():
    z = torch.tensor(Z)
    only_first = hard_cross_entropy(z, torch.tensor([0, IGNORE_INDEX]))
    assert only_first.item() == pytest.approx(-(1.0 - math.log(math.e + 1 + 1 / math.e)), rel=1e-5)
    z.requires_grad_(True)
    none = hard_cross_entropy(z, torch.tensor([IGNORE_INDEX, IGNORE_INDEX]))
    none.backward()
    assert none.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))


def test_gradient_approaches_logit_matching_at_high_temperature():
    """Paper eq. 3-4: dC/dz_i = (q_i - p_i) / T ~ (z_i - v_i) / (S T^2) for zero-mean logits.

    (The paper's N is the number of classes, S here.) Averaging over B frames adds 1 / B.
    """
    torch.manual_seed(0)
    num_frames, num_senones = 8, 40
    z = torch.randn(num_frames, num_senones, dtype=torch.float64)
    v = torch.randn(num_frames, num_senones, dtype=torch.float64) * 2
    z, v = z - z.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)
    errors = []
    for temperature in (50.0, 500.0):
        student = z.clone().requires_grad_(True)
        soft_cross_entropy(student, soft_targets(v, temperature), temperature).backward()
        approx = (z - v) / (num_frames * num_senones * temperature**2)
        errors.append(((student.grad - approx).abs().max() / approx.abs().max()).item())
    # the approximation's relative error is O(max|logit| / T): ~7% at T = 50, ~0.7% at T = 500
    assert errors[0] < 0.1 and errors[1] < 0.01


def test_t_squared_makes_gradient_scale_independent_of_temperature():
    torch.manual_seed(1)
    z, v = torch.randn(16, 30), torch.randn(16, 30) * 2
    norms, raw_norms = [], []
    for temperature in (10.0, 30.0, 100.0):
        student = z.clone().requires_grad_(True)
        distillation_loss(student, soft_targets(v, temperature), None, temperature, alpha=1.0).loss.backward()
        norms.append(student.grad.norm().item())
        raw_norms.append(norms[-1] / temperature**2)
    assert max(norms) / min(norms) < 1.1
    assert raw_norms[0] / raw_norms[-1] > 50  # without T^2 the gradient falls as 1/T^2


@pytest.mark.parametrize("policy", ["tail", "renormalise"])
def test_top_k_with_all_senones_equals_dense(policy):
    torch.manual_seed(2)
    z, p = torch.randn(5, 12), torch.softmax(torch.randn(5, 12) * 3, -1)
    dense = soft_cross_entropy(z, p, 2.0)
    assert soft_cross_entropy(z, top_k_targets(p, 12), 2.0, policy).item() == pytest.approx(dense.item(), rel=1e-5)


def test_tail_policy_is_exact_for_a_flat_tail_and_renormalise_is_not():
    torch.manual_seed(3)
    num_senones, k = 20, 4
    p = torch.full((6, num_senones), 0.01)
    head = torch.softmax(torch.randn(6, k), -1) * (1 - 0.01 * (num_senones - k))
    p[:, :k] = head
    z = torch.randn(6, num_senones, requires_grad=True)
    dense = soft_cross_entropy(z, p, 3.0)
    (dense_grad,) = torch.autograd.grad(dense, z)
    top = top_k_targets(p, k)
    tail = soft_cross_entropy(z, top, 3.0, "tail")
    (tail_grad,) = torch.autograd.grad(tail, z)
    assert tail.item() == pytest.approx(dense.item(), rel=1e-5)
    assert torch.allclose(tail_grad, dense_grad, atol=1e-6)
    assert soft_cross_entropy(z, top, 3.0, "renormalise").item() != pytest.approx(dense.item(), rel=1e-3)


def test_top_k_accepts_storage_dtypes_and_clamps_rounding():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    top = TopKTargets(torch.tensor([[0, 1, 2]], dtype=torch.int16), p.half() * 1.001)  # sums a bit over 1
    loss = soft_cross_entropy(torch.zeros(1, 3), top, 1.0)
    assert math.isfinite(loss.item())


def test_shape_errors():
    with pytest.raises(ValueError, match="do not match"):
        soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="do not fit"):
        soft_cross_entropy(torch.zeros(2, 3), TopKTargets(torch.zeros(3, 1).long(), torch.zeros(3, 1)), 1.0)
    with pytest.raises(ValueError, match="top-k policy"):
        soft_cross_entropy(torch.zeros(2, 3), TopKTargets(torch.zeros(2, 1).long(), torch.zeros(2, 1)), 1.0, "x")
