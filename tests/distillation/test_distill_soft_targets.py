import pytest
import torch

from asr_kd.distillation.soft_targets import TopKTargets, ensemble_soft_targets, soft_targets, top_k_targets


def test_soft_targets_soften_with_temperature():
    z = torch.tensor([3.0, 1.0, 0.0])
    p1, p5 = soft_targets(z, 1.0), soft_targets(z, 5.0)
    assert torch.allclose(p1.sum(), torch.tensor(1.0))
    assert p5.max() < p1.max() and p5.min() > p1.min()
    assert torch.allclose(soft_targets(z, 1e6), torch.full((3,), 1 / 3), atol=1e-5)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        soft_targets(torch.zeros(3), temperature)


@pytest.mark.parametrize("mode", ["mean_prob", "mean_logits", "geometric"])
def test_single_member_equals_soft_targets(mode):
    z = torch.randn(1, 7, 11)
    assert torch.allclose(ensemble_soft_targets(z, 2.0, mode), soft_targets(z[0], 2.0), atol=1e-6)


def test_mean_prob_is_arithmetic_mean_and_mean_logits_is_softmax_of_mean():
    z = torch.randn(4, 5, 9) * 3
    expected_prob = torch.stack([soft_targets(m, 3.0) for m in z]).mean(0)
    assert torch.allclose(ensemble_soft_targets(z, 3.0, "mean_prob"), expected_prob, atol=1e-6)
    assert torch.allclose(ensemble_soft_targets(z, 3.0, "mean_logits"), soft_targets(z.mean(0), 3.0), atol=1e-6)


def test_mean_prob_does_not_underflow_for_peaky_members():
    z = torch.tensor([[[200.0, 0.0]], [[0.0, 200.0]]])
    assert torch.allclose(ensemble_soft_targets(z, 1.0), torch.tensor([[0.5, 0.5]]))


def test_bad_member_stack_and_mode():
    with pytest.raises(ValueError, match="combine mode"):
        ensemble_soft_targets(torch.zeros(2, 3, 4), 1.0, "median")
    with pytest.raises(ValueError, match=r"\(M, N, S\)"):
        ensemble_soft_targets(torch.zeros(3, 4), 1.0)


def test_top_k_sorted_and_not_renormalised():
    probs = torch.softmax(torch.randn(6, 20), -1)
    top = top_k_targets(probs, 5)
    assert top.k == 5
    assert torch.equal(top.probs, probs.gather(1, top.ids))
    assert (top.probs[:, :-1] >= top.probs[:, 1:]).all()
    assert (top.probs.sum(-1) < 1).all()
    with pytest.raises(ValueError, match="k must be"):
        top_k_targets(probs, 21)


def test_top_k_shape_check():
    with pytest.raises(ValueError, match="both be"):
        TopKTargets(torch.zeros(3, 2, dtype=torch.int64), torch.zeros(3, 3))
