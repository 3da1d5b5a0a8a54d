"""Re-temperable low-rank soft targets on synthetic logits: exactness, fidelity vs rank, ensembles."""


import pytest
import torch

from asr_kd.distillation.fidelity import frame_divergences
from asr_kd.distillation.lowrank import (
    LowRankBasis,
    LowRankTargets,
    code_bytes,
    default_rank_8bit,
    encode,
    ensemble_weight,
    fit_basis,
    fit_utterances,
    log1mexp,
    profile_at,
    rank_for_bytes,
    retemper,
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
    asymptotic = combine_logits(list(member_logits), 1.0, "mean_logits")
    frames = encode(served[temperatures.index(1.0)], served, top_k, basis, asymptotic)
    return LowRankTargets(frames.ids.short(), frames.top_log_probs.half(), frames.coeffs, frames.log_tail.half(),
                          tuple(temperatures), 1.0, basis).to("cpu")


def mean_kl(member_logits, targets, temperature):
    ref = combine_logits(list(member_logits), temperature, "mean_prob")
    return float(frame_divergences(ref, targets.log_probs(temperature))["kl_dense_store"].mean())


def fitted_basis(member_logits, top_k, rank, rank_8bit=None):
    members = list(member_logits)
    asymptotic = combine_logits(members, 1.0, "mean_logits")
    profiles = tail_profile(combine_logits(members, 1.0, "mean_prob"), top_k, asymptotic)
    return fit_basis(profiles, rank, rank_8bit)


def test_one_model_is_re_tempered_exactly_at_every_temperature():
    # the exact tail profile (no rank or code loss) leaves softmax(log p_1 / T) = softmax(z / T)
    # for one model: exact at every T, even for frames whose T = 1 tail mass is far below
    # float32's resolution of 1 - top-k mass
    train, test = low_rank_logits(400, 24, 24, seed=0), low_rank_logits(200, 24, 24, seed=0)[:, :100]
    stored = store_targets(test, top_k=4, basis=fitted_basis(train, 4, rank=23, rank_8bit=23))
    assert float(stored.log_tail[:, 0].min()) < -20  # some tails of 1e-9 and below at T = 1
    log_p1 = test[0].log_softmax(-1)
    for t in TEMPERATURES:
        exact = retemper(stored.ids, stored.top_log_probs, tail_profile(log_p1, 4)[:, :24], stored.log_tail[:, 0],
                         stored.log_tail[:, stored.column(t)], 1.0 / t)
        assert torch.allclose(exact.exp(), torch.softmax(test[0] / t, -1), rtol=5e-3, atol=1e-6)  # fp16 values
        assert torch.allclose(exact.exp().sum(-1), torch.ones(100), atol=1e-5)
        assert float(frame_divergences(test[0].log_softmax(-1) if t == 1 else torch.log_softmax(test[0] / t, -1),
                                       exact)["kl_dense_store"].mean()) < 1e-6
        # full rank in the store: what is left is the coefficients' 8-bit rounding
        assert mean_kl(test, stored, t) < 0.015, t


def test_fidelity_grows_with_rank_and_beats_a_uniform_tail():
    # as soft as the real E1 ensemble (~90% of the mass in the top 20 of 1000 at T = 1)
    logits = low_rank_logits(3000, 200, 12, seed=1, scale=0.7)
    train, test = logits[:, :2000], logits[:, 2000:]
    kls = {}
    for name, basis in (("uniform", uniform_tail(200)), ("r2", fitted_basis(train, 8, 2, 2)),
                        ("r6", fitted_basis(train, 8, 6, 6)), ("r12", fitted_basis(train, 8, 12, 12))):
        targets = store_targets(test, 8, basis)
        kls[name] = [mean_kl(test, targets, t) for t in TEMPERATURES]
    for i, t in enumerate(TEMPERATURES):
        assert kls["r2"][i] > kls["r6"][i] > kls["r12"][i], (t, kls)
        assert kls["uniform"][i] > kls["r2"][i], (t, kls)
    assert max(kls["r12"]) < 5e-3 < min(kls["uniform"])  # rank >= the logits' rank: int8 rounding is left


def test_4_bit_codes_buy_more_rank_than_they_cost_on_a_decaying_spectrum():
    # what a trained teacher's tail profiles look like (and what the 1/4 8-bit default is for):
    # a few strong directions and many weak ones; at 12 bytes of codes, 3 x 8 + 18 x 4 bits
    # (rank 21) must beat 12 x 8 bits (rank 12)
    g = torch.Generator().manual_seed(7)
    h = torch.randn(4000, 40, generator=g) * (3.0 * 0.9 ** torch.arange(40.0))
    logits = (h @ torch.randn(40, 150, generator=g))[None]
    train, test = logits[:, :3000], logits[:, 3000:]
    mixed = store_targets(test, 8, fitted_basis(train, 8, rank_for_bytes(12)))
    wide = store_targets(test, 8, fitted_basis(train, 8, 12, 12))
    assert mixed.basis.code_bytes == wide.basis.code_bytes == 12
    for t in TEMPERATURES:
        assert mean_kl(test, mixed, t) < mean_kl(test, wide, t), t


def test_ensemble_re_tempering_error_is_bounded_as_measured():
    # An ensemble's mean of tempered members is no re-tempering of its T = 1 mean: the store keeps
    # the masses exact at every served T, re-tempers the top-k shape and moves the tail towards
    # the members' mean logits as T grows (lowrank.ensemble_weight). On these 3-member synthetic
    # ensembles (members far more different than trained seeds) its KL stays below the floor of
    # re-tempering the exact T = 1 mean, KL(p_T || softmax(log p_1 / T)), at T >= 2: measured
    # 0.94 / 0.75 / 0.57 x the floor at T = 2 / 5 / 10 (the real ensemble: the recipe README).
    logits = low_rank_logits(3000, 60, 6, seed=2, members=3)
    train, test = logits[:, :2000], logits[:, 2000:]
    targets = store_targets(test, top_k=8, basis=fitted_basis(train, 8, rank=40, rank_8bit=40))
    base = combine_logits(list(test), 1.0, "mean_prob")
    for t, bound in zip(TEMPERATURES, (None, 1.0, 0.85, 0.7)):
        floor = float(frame_divergences(combine_logits(list(test), t, "mean_prob"),
                                        torch.log_softmax(base / t, -1))["kl_dense_store"].mean())
        kl = mean_kl(test, targets, t)
        if bound is None:
            assert floor == pytest.approx(0.0, abs=1e-6) and kl < 1e-3
        else:
            assert floor > 1e-3 and kl <= bound * floor, (t, kl, floor)
        # the masses are exact: the teacher's mass on the stored top-k, at this T
        top_mass = combine_logits(list(test), t, "mean_prob").exp().gather(1, targets.ids).sum(-1)
        assert torch.allclose(targets.probs(t).gather(1, targets.ids).sum(-1), top_mass, atol=2e-3)


def test_one_model_has_no_ensemble_part():
    log_p = low_rank_logits(50, 20, 4, seed=8)[0].log_softmax(-1)
    profiles = tail_profile(log_p, 3, asymptotic=log_p)
    assert profiles.shape == (50, 40) and torch.equal(profiles[:, 20:], torch.zeros(50, 20))
    assert torch.equal(profiles, tail_profile(log_p, 3))
    assert ensemble_weight(1.0, 1.0) == 0.0 and ensemble_weight(1.0, 0.5) == 0.0
    assert ensemble_weight(1.0, 4.0) == pytest.approx(0.5) and ensemble_weight(2.0, 8.0) == pytest.approx(0.5)


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


def test_codes_round_trip_within_half_a_step():
    logits = low_rank_logits(800, 30, 6, seed=5)
    basis = fitted_basis(logits, 4, 7)
    assert (basis.rank_8bit, basis.code_bytes) == (2, 2 + 3)  # 2 x 8 bits, 5 x 4 bits in 3 bytes
    coeffs = basis.project(tail_profile(logits[0], 4))
    packed = basis.encode(coeffs)
    assert packed.dtype == torch.uint8 and packed.shape == (800, 5)
    back = basis.decode(packed)
    inside = coeffs.abs() <= basis.code_max() * basis.steps
    assert inside.float().mean() > 0.99  # the steps cover the 99.9th percentile of the fitting frames
    assert ((back - coeffs).abs()[inside] <= basis.steps.expand_as(coeffs)[inside] / 2 + 1e-5).all()
    assert ((back - coeffs).abs()[~inside] <= coeffs.abs()[~inside]).all()  # clipped, with the right sign
    assert (basis.explained[:-1] >= basis.explained[1:]).all() and 0.9 < float(basis.explained.sum()) <= 1.0
    for weight in (0.0, 0.3):  # the decoder's shortcut: combine the basis, then one product
        assert torch.allclose(basis.tail_shape(back, weight), profile_at(basis.reconstruct(back), weight), atol=1e-4)
    with pytest.raises(AsrKdError, match="rank_8bit must be in 0..7"):
        fit_basis(tail_profile(logits[0], 4), 7, rank_8bit=8)


def test_rank_for_bytes_and_default_split():
    assert [default_rank_8bit(r) for r in (0, 1, 4, 96, 192)] == [0, 0, 1, 24, 48]
    assert code_bytes(96, 24) == 60 and rank_for_bytes(60) == 96 and rank_for_bytes(120) == 192


def test_basis_save_load(tmp_path):
    logits = low_rank_logits(300, 16, 3, seed=6)
    basis = fitted_basis(logits, 3, 4)
    basis.save(tmp_path / "basis.npz", ["u1", "u2"])
    loaded = LowRankBasis.load(tmp_path / "basis.npz")
    for name in ("mean", "components", "explained", "steps"):
        assert torch.equal(getattr(loaded, name), getattr(basis, name))
    assert loaded.rank_8bit == basis.rank_8bit == 1
    assert fit_utterances(tmp_path / "basis.npz") == ["u1", "u2"]
    with pytest.raises(AsrKdError, match="missing PCA basis"):
        LowRankBasis.load(tmp_path / "nope.npz")
