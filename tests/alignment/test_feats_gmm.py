import numpy as np
import pytest

from asr_kd.alignment.feats import DIGITAL_SILENCE, cepstral_features, dct_matrix, deltas, speaker_normalise
from asr_kd.alignment.gmm import DiagGmms, gaussian_stats
from asr_kd.utils.errors import AsrKdError


def test_dct_is_orthonormal_and_deltas_of_a_ramp_are_its_slope() -> None:
    basis = dct_matrix(40, 40)
    np.testing.assert_allclose(basis.T @ basis, np.eye(40), atol=1e-10)
    ramp = np.arange(20, dtype=np.float64)[:, None] * np.array([[1.0, -2.0]])
    np.testing.assert_allclose(deltas(ramp)[2:-2], np.tile([[1.0, -2.0]], (16, 1)))
    assert cepstral_features(np.zeros((7, 40), dtype=np.float32)).shape == (7, 39)


def test_digital_silence_does_not_distort_speaker_normalisation() -> None:
    rng = np.random.default_rng(0)
    speech = rng.normal(12.0, 2.0, size=(1000, 4))
    with_zeros = np.concatenate([speech, np.full((40, 4), DIGITAL_SILENCE - 0.4)])
    clean, dirty = speaker_normalise([speech])[0], speaker_normalise([with_zeros])[0]
    naive = (with_zeros - with_zeros.mean(0)) / with_zeros.std(0)
    assert (naive[:1000].std(axis=0) < 0.5 * clean.std(axis=0)).all()  # what the floor values would do
    np.testing.assert_allclose(dirty[:1000], clean)
    assert dirty[1000:].min() >= dirty[:1000].min() - 1e-9  # floor frames become the quietest real value


def test_gmm_loglik_matches_the_formula() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3))
    labels = np.repeat([0, 1], 25)
    gmms = DiagGmms.single_gaussians(x, labels, 2, var_floor=np.full(3, 1e-3))
    mean, var = x[25:].mean(0), x[25:].var(0)
    expected = -0.5 * (np.log(2 * np.pi * var).sum() + ((x - mean) ** 2 / var).sum(1))
    np.testing.assert_allclose(gmms.loglik(x, np.array([1]))[:, 0], expected, rtol=1e-4)


def test_split_and_reestimate_find_two_clusters() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-3, 0.5, size=(400, 2)), rng.normal(3, 0.5, size=(400, 2))])
    labels = np.zeros(len(x), dtype=np.int64)
    gmms = DiagGmms.single_gaussians(x, labels, 1, var_floor=np.full(2, 1e-3))
    gmms = gmms.split(2, np.array([len(x)]))
    assert gmms.num_gaussians == 2
    for _ in range(10):
        gmms = gmms.reestimate(x, labels, np.full(2, 1e-3))
    np.testing.assert_allclose(np.sort(gmms.means[:, 0]), [-3, 3], atol=0.2)
    np.testing.assert_allclose(gmms.weights, [0.5, 0.5], atol=0.05)


def test_stats_and_model_file(tmp_path) -> None:
    count, total, sumsq = gaussian_stats(np.ones((4, 2)), np.array([2, 2, 0, 2]), 4)
    np.testing.assert_array_equal(count, [1, 0, 3, 0])
    np.testing.assert_array_equal(total[2], [3, 3])
    gmms = DiagGmms.single_gaussians(np.eye(3), np.array([0, 1, 1]), 3, var_floor=np.full(3, 0.1))
    gmms.save(tmp_path / "m.npz", var_floor=np.full(3, 0.1))
    again, extra = DiagGmms.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.means, gmms.means)
    np.testing.assert_array_equal(extra["var_floor"], np.full(3, 0.1))
    with pytest.raises(AsrKdError, match="missing"):
        DiagGmms.load(tmp_path / "none.npz")
