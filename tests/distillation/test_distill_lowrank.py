"""Re-temperable low-rank soft targets on synthetic logits: exactness, fidelity vs rank, ensembles."""

from dataclasses import replace

import pytest
import torch

from asr_kd.distillation.fidelity import frame_divergences
from asr_kd.distillation.lowrank import (
    LowRankBasis,
    LowRankTargets,
    encode,
    fit_basis,
    fit_utterances,
    log1mexp,
    tail_profile,
    uniform_tail,
)
from asr_kd.models.ensemble import combine_logits
from asr_kd.utils.errors import AsrKdError

TEMPERATURES = (1.0, 2.0, 5.0, 10.0)


def low_rank_logits(frames: int, senones: int, hidden: int, seed: int, members: int = 1,
                    scale: float = 2.5) -> torch.Tensor:
    """``(M, N, S)`` logits ``h W_m + b_m`` of a hidden size ``hidden`` (what a DNN's last layer
    makes), peaky like a trained acoustic model (``scale``); members share most of ``W``."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(frames, hidden, generator=g) * scale
    w, b = torch.randn(hidden, senones, generator=g), torch.randn(senones, generator=g)
    return torch.stack([h @ (w + 0.4 * torch.randn(hidden, senones, generator=g)) + b for _ in range(members)])


def store_targets(member_logits: torch.Tensor, top_k: int, basis: LowRankBasis,
                  temperatures=TEMPERATURES) -> LowRankTargets:
    """Encode the ensemble (paper's mean of tempered members) as a store would, in its dtypes."""
    served = [combine_logits(list(member_logits), t, "mean_prob") for t in temperatures]
    frames = encode(served[temperatures.index(1.0)], served, top_k, basis)
    return LowRankTargets(frames.ids.short(), frames.top_log_probs.half(), frames.coeffs, frames.log_tail.half(),
                          tuple(temperatures), 1.0, basis).to("cpu")


def mean_kl(member_logits, targets, temperature):
    ref = combine_logits(list(member_logits), temperature, "mean_prob")
    return float(frame_divergences(ref, targets.log_probs(temperature))["kl_dense_store"].mean())


def fitted_basis(member_logits, top_k, rank):
    return fit_basis(tail_profile(combine_logits(list(member_logits), 1.0, "mean_prob"), top_k), rank)


def test_one_model_is_re_tempered_exactly_at_every_temperature():
    # full rank and float coefficients: the tail profile is reconstructed exactly, so what is
    # left is softmax(log p_1 / T) = softmax(z / T) for one model: exact at every T, even for
    # frames whose T = 1 tail mass is far below float32's resolution of 1 - top-k mass
    train, test = low_rank_logits(400, 24, 24, seed=0), low_rank_logits(200, 24, 24, seed=0)[:, :100]
    basis = fitted_basis(train, 4, rank=23)
    stored = store_targets(test, top_k=4, basis=basis)
    assert float(stored.log_tail[:, 0].min()) < -20  # some tails of 1e-9 and below at T = 1
    exact = LowRankTargets(stored.ids, stored.top_log_probs, basis.project(tail_profile(test[0].log_softmax(-1), 4)),
                           stored.log_tail, TEMPERATURES, 1.0, replace(basis, steps=torch.ones(23)))
    for t in TEMPERATURES:
        assert mean_kl(test, exact, t) < 1e-6, t
        assert torch.allclose(exact.probs(t), torch.softmax(test[0] / t, -1), rtol=5e-3, atol=1e-6)  # fp16 values
        assert torch.allclose(exact.probs(t).sum(-1), torch.ones(100), atol=1e-5)
        # the store's int8 coefficients cost a rounding error, small against a top-k store's
        assert mean_kl(test, stored, t) < 0.015, t


def test_fidelity_grows_with_rank_and_beats_a_uniform_tail():
    # as soft as the real E1 ensemble (~90% of the mass in the top 20 of 1000 at T = 1)
    logits = low_rank_logits(3000, 200, 12, seed=1, scale=0.7)
    train, test = logits[:, :2000], logits[:, 2000:]
    kls = {}
    for name, basis in (("uniform", uniform_tail(200)), ("r2", fitted_basis(train, 8, 2)),
                        ("r6", fitted_basis(train, 8, 6)), ("r12", fitted_basis(train, 8, 12))):
        targets = store_targets(test, 8, basis)
        kls[name] = [mean_kl(test, targets, t) for t in TEMPERATURES]
    for i, t in enumerate(TEMPERATURES):
        assert kls["r2"][i] > kls["r6"][i] > kls["r12"][i], (t, kls)
        assert kls["uniform"][i] > kls["r2"][i], (t, kls)
    assert max(kls["r12"]) < 5e-3 < min(kls["uniform"])  # rank >= the logits' rank: int8 rounding is left


def test_ensemble_re_tempering_error_is_bounded_as_measured():
    # An ensemble's mean of tempered members is no re-tempering of its T = 1 mean: the store
    # keeps the masses exact at every served T and re-tempers only the shapes. On these
    # 3-member synthetic ensembles the store's KL stays within 1.3x the re-tempering floor
    # KL(p_T || softmax(log p_1 / T)) plus 2e-4 (measured: 0.95-1.0x; real teachers: the README).
    logits = low_rank_logits(3000, 60, 60, seed=2, members=3)
    train, test = logits[:, :2000], logits[:, 2000:]
    targets = store_targets(test, top_k=8, basis=fitted_basis(train, 8, rank=59))
    base = combine_logits(list(test), 1.0, "mean_prob")
    for t in TEMPERATURES:
        floor = float(frame_divergences(combine_logits(list(test), t, "mean_prob"),
                                        torch.log_softmax(base / t, -1))["kl_dense_store"].mean())
        kl = mean_kl(test, targets, t)
        assert (floor == pytest.approx(0.0, abs=1e-6)) if t == 1.0 else floor > 1e-4
        assert kl <= 1.3 * floor + 2e-4, (t, kl, floor)
        # the masses are exact: the teacher's mass on the stored top-k, at this T
        top_mass = combine_logits(list(test), t, "mean_prob").exp().gather(1, targets.ids).sum(-1)
        assert torch.allclose(targets.probs(t).gather(1, targets.ids).sum(-1), top_mass, atol=2e-3)


def test_unserved_temperature_and_bad_shapes_are_refused():
    logits = low_rank_logits(100, 20, 4, seed=4)
    targets = store_targets(logits, 3, fitted_basis(logits, 3, 2), temperatures=(1.0, 2.0))
    with pytest.raises(AsrKdError, match=r"serves T in \[1.0, 2.0\], not T=5"):
        targets.log_probs(5.0)
    with pytest.raises(ValueError, match="low-rank targets"):
        LowRankTargets(targets.ids, targets.top_log_probs[:, :2], targets.coeffs, targets.log_tail, (1.0, 2.0), 1.0,
                       targets.basis)
    with pytest.raises(AsrKdError, match="1 <= k < 20"):
        encode(logits[0], [logits[0]], 20, uniform_tail(20))


def test_log1mexp_is_accurate_at_both_ends():
    x = torch.tensor([-1e-9, -1e-4, -0.5, -0.7, -5.0, -60.0], dtype=torch.float64)
    expected = torch.log(-torch.expm1(x))
    assert torch.allclose(log1mexp(x.float()).double(), expected, rtol=1e-5)


def test_int8_codes_round_trip_within_half_a_step():
    logits = low_rank_logits(800, 30, 6, seed=5)
    basis = fitted_basis(logits, 4, 5)
    coeffs = basis.project(tail_profile(logits[0], 4))
    back = basis.dequantise(basis.quantise(coeffs))
    inside = coeffs.abs() <= 127 * basis.steps
    assert inside.float().mean() > 0.99  # the steps cover the 99.9th percentile of the fitting frames
    assert ((back - coeffs).abs()[inside] <= basis.steps.expand_as(coeffs)[inside] / 2 + 1e-6).all()
    assert (basis.explained[:-1] >= basis.explained[1:]).all() and 0.9 < float(basis.explained.sum()) <= 1.0


def test_basis_save_load(tmp_path):
    logits = low_rank_logits(300, 16, 3, seed=6)
    basis = fitted_basis(logits, 3, 4)
    basis.save(tmp_path / "basis.npz", ["u1", "u2"])
    loaded = LowRankBasis.load(tmp_path / "basis.npz")
    for name in ("mean", "components", "explained", "steps"):
        assert torch.equal(getattr(loaded, name), getattr(basis, name))
    assert fit_utterances(tmp_path / "basis.npz") == ["u1", "u2"]
    with pytest.raises(AsrKdError, match="missing PCA basis"):
        LowRankBasis.load(tmp_path / "nope.npz")
