"""Mean-posterior senone priors (Kaldi's nnet-adjust-priors): ``asr-kd priors`` and ``decode --log-priors``."""

from __future__ import annotations

import numpy as np
import pytest

from asr_kd.alignment.priors import PRIOR_FLOOR, load_log_priors, mean_posterior_log_priors
from asr_kd.cli import main
from asr_kd.utils.array_store import ArrayStoreWriter
from asr_kd.utils.errors import AsrKdError


def _write_log_posteriors(root, arrays: dict[str, np.ndarray]) -> None:
    ArrayStoreWriter(root, np.float32, (next(iter(arrays.values())).shape[1],)).write_shard(
        0, [(u, np.log(p).astype(np.float32)) for u, p in arrays.items()])


def test_mean_posterior_is_the_frame_average(tmp_path) -> None:
    tiny = 1e-12  # senone 2 almost never predicted: below the floor
    posts = {"a": np.array([[0.7, 0.3, tiny], [0.5, 0.5, tiny]]), "b": np.array([[0.1, 0.9, tiny]])}
    _write_log_posteriors(tmp_path / "post", posts)
    log_priors, frames = mean_posterior_log_priors(tmp_path / "post")
    assert frames == 3
    expected = np.array([1.3, 1.7, 3 * tiny]) / 3
    expected = np.maximum(expected, PRIOR_FLOOR) / np.maximum(expected, PRIOR_FLOOR).sum()
    np.testing.assert_allclose(np.exp(log_priors), expected, rtol=1e-6)
    assert np.exp(log_priors[2]) == pytest.approx(PRIOR_FLOOR, rel=1e-3)  # floored, then renormalised
    only_b, frames_b = mean_posterior_log_priors(tmp_path / "post", ["b"])
    assert frames_b == 1 and np.exp(only_b)[1] == pytest.approx(0.9, rel=1e-6)
    with pytest.raises(AsrKdError, match="no scores for 1 utterance"):
        mean_posterior_log_priors(tmp_path / "post", ["a", "c"])
    _write_log_posteriors(tmp_path / "logits", {"a": np.exp(np.array([[2.0, 1.0, 0.5]]))})  # logits, not log p
    with pytest.raises(AsrKdError, match="not log-posteriors"):
        mean_posterior_log_priors(tmp_path / "logits")


def test_cli_writes_priors_that_decode_reads(tmp_path, capsys) -> None:
    _write_log_posteriors(tmp_path / "post", {"a": np.array([[0.25, 0.75], [0.75, 0.25]])})
    out = tmp_path / "priors.npy"
    assert main(["priors", "--scores", str(tmp_path / "post"), "--out", str(out)]) == 0
    assert "mean posterior of 2 frames" in capsys.readouterr().out
    np.testing.assert_allclose(load_log_priors(out), np.log([0.5, 0.5]))

    np.save(tmp_path / "nan.npy", np.array([0.0, np.nan]))
    np.save(tmp_path / "matrix.npy", np.zeros((2, 2)))
    (tmp_path / "text.npy").write_text("not numpy")
    for name, message in (("nan", "must be finite"), ("matrix", "expected a 1-D float array"),
                          ("text", "not a readable .npy file")):
        with pytest.raises(AsrKdError, match=message):
            load_log_priors(tmp_path / f"{name}.npy")
    code = main(["decode", "--graph-dir", str(tmp_path), "--scores", str(tmp_path / "post"),
                 "--log-priors", str(tmp_path / "nan.npy"), "--out", str(tmp_path / "dec")])
    assert code == 2 and "nan.npy: log-priors must be finite" in capsys.readouterr().err
