"""Cross-entropy, entropy and top-k accuracy of stored log-posteriors (asr_kd.scoring.posterior_stats)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_kd.alignment import SenoneTree
from asr_kd.cli import main
from asr_kd.scoring.posterior_stats import (
    LONG_RUN,
    PosteriorStats,
    error_runs,
    senone_phone_ids,
    stored_posterior_stats,
)
from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter
from asr_kd.utils.errors import AsrKdError


def test_known_distributions() -> None:
    stats = PosteriorStats()
    uniform = torch.full((4, 8), -math.log(8))
    stats.update(uniform, torch.tensor([0, 1, 2, 3]))
    peaked = torch.log_softmax(torch.tensor([[10.0, 0, 0, 0, 0, 0, 0, 0]] * 2), -1)
    stats.update(peaked, torch.tensor([0, 7]))  # right, then the least likely senone
    d = stats.to_dict()
    assert d["frames"] == 6
    expected_nll = (4 * math.log(8) - float(peaked[0, 0]) - float(peaked[1, 7])) / 6
    assert d["cross_entropy"] == pytest.approx(expected_nll)
    # uniform: no senone scores above the target, so every rank is 0 (ties count for the target)
    assert d["top1_acc"] == pytest.approx(5 / 6) and d["top5_acc"] == pytest.approx(1.0)  # senone 7: rank 1
    assert d["top20_acc"] == pytest.approx(1.0)
    assert d["entropy"] < math.log(8) and d["mean_max_prob"] > 1 / 8
    with pytest.raises(AsrKdError, match="zero frames"):
        PosteriorStats().to_dict()


def _store(path: Path, arrays: dict[str, np.ndarray]) -> ArrayStore:
    first = next(iter(arrays.values()))
    ArrayStoreWriter(path, first.dtype, first.shape[1:]).write_shard(0, arrays.items())
    return ArrayStore(path)


def test_stores_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    logits = {f"u{i}": rng.normal(size=(7 + i, 5)).astype(np.float32) for i in range(3)}
    targets = {u: rng.integers(0, 5, size=len(z)).astype(np.int32) for u, z in logits.items()}
    log_post = {u: torch.log_softmax(torch.from_numpy(z), -1).numpy().astype(np.float16) for u, z in logits.items()}
    exp = tmp_path / "exp"
    senones = _store(exp / "ali" / "dev" / "senones", targets)
    _store(tmp_path / "sys" / "logpost", log_post)
    d = stored_posterior_stats(tmp_path / "sys" / "logpost", senones)
    nll = -np.mean(np.concatenate([log_post[u].astype(np.float64)[np.arange(len(t)), t] for u, t in targets.items()]))
    assert d["utterances"] == 3 and d["cross_entropy"] == pytest.approx(nll, rel=1e-6)

    (exp / "tree").mkdir()
    np.save(exp / "tree" / "senone_counts.npy", np.array([5, 1, 1, 1, 40]))  # the priors: prior-divided accuracy too
    out = tmp_path / "post.md"
    assert main(["report", "posteriors", "--exp", str(exp), "--subset", "dev", "--scores",
                 f"sys={tmp_path}/sys/logpost", "--out", str(out)]) == 0
    assert f"| sys | {nll:.3f} |" in out.read_text() and "prior-divided frame acc" in out.read_text()
    assert "phone frame acc" not in out.read_text()  # no tree.json: no phone columns
    with pytest.raises(AsrKdError, match="priors of another tree"):
        stored_posterior_stats(tmp_path / "sys" / "logpost", senones, log_priors=np.zeros(4))
    _store(tmp_path / "short" / "logpost", {"u0": log_post["u0"][:-1]})
    assert main(["report", "posteriors", "--exp", str(exp), "--subset", "dev", "--scores",
                 f"short={tmp_path}/short/logpost", "--out", str(out)]) == 2
    assert "u0" in capsys.readouterr().err
    _store(tmp_path / "narrow" / "logpost", {u: a[:, :3] for u, a in log_post.items()})  # another tree's senones
    assert any(int(t.max()) >= 3 for t in targets.values())
    with pytest.raises(AsrKdError, match="scores of another tree"):
        stored_posterior_stats(tmp_path / "narrow" / "logpost", senones)
    with pytest.raises(AsrKdError, match="the tree has 4: scores of another tree"):
        stored_posterior_stats(tmp_path / "sys" / "logpost", senones, senone_phones=np.zeros(4, dtype=np.int64))


def test_error_runs_and_prior_divided_accuracy() -> None:
    assert error_runs(torch.tensor([True, True, False, True, False, False, True, True, True])).tolist() == [2, 1, 3]
    assert error_runs(torch.tensor([False, False])).tolist() == []
    assert error_runs(torch.zeros(0, dtype=torch.bool)).numel() == 0

    # senone 0 is frequent and wins every argmax by a little; dividing by the priors hands the frames
    # to the rare senone 1, which is right on the last 9 of 10 frames
    log_post = torch.log(torch.tensor([[0.55, 0.45]] * 10))
    target = torch.tensor([0] + [1] * 9)
    stats = PosteriorStats(log_priors=torch.log(torch.tensor([0.9, 0.1])))
    stats.update(log_post, target)
    d = stats.to_dict()
    assert d["top1_acc"] == pytest.approx(0.1) and d["prior_divided_acc"] == pytest.approx(0.9)
    assert d["error_runs_per_100"] == pytest.approx(10.0)  # one run of 9 wrong frames in 10
    assert LONG_RUN <= 9 and d["long_error_run_frames"] == pytest.approx(0.9)
    # runs never cross utterances: two updates of 5 wrong frames are two short runs
    split = PosteriorStats()
    split.update(log_post[:5], torch.ones(5, dtype=torch.long))
    split.update(log_post[5:], torch.ones(5, dtype=torch.long))
    assert split.error_run_count == 2 and split.to_dict()["long_error_run_frames"] == 0.0
    assert "prior_divided_acc" not in split.to_dict()


def test_phone_accuracy_counts_a_wrong_senone_of_the_right_phone_as_right() -> None:
    # senones 0, 1 belong to phone 0, senone 2 to phone 1
    senone_phones = torch.tensor([0, 0, 1])
    log_post = torch.log(torch.tensor([[0.1, 0.5, 0.4],    # aligned 0: wrong senone, right phone (p = 0.6)
                                       [0.2, 0.1, 0.7],    # aligned 1: wrong phone (p(phone 0) = 0.3)
                                       [0.1, 0.1, 0.8]]))  # aligned 2: right
    stats = PosteriorStats(senone_phones=senone_phones)
    stats.update(log_post, torch.tensor([0, 1, 2]))
    d = stats.to_dict()
    assert d["top1_acc"] == pytest.approx(1 / 3) and d["phone_acc"] == pytest.approx(2 / 3)
    assert d["phone_cross_entropy"] == pytest.approx(-(math.log(0.6) + math.log(0.3) + math.log(0.8)) / 3)
    assert d["phone_cross_entropy"] < d["cross_entropy"]  # a phone's mass is at least its senone's


def test_cli_reads_the_phones_from_the_tree(tmp_path: Path) -> None:
    tree = SenoneTree.monophone(num_states=1)  # senone i is phone i
    rng = np.random.default_rng(1)
    targets = {"u0": rng.integers(0, tree.num_senones, size=20).astype(np.int32)}
    log_post = {"u0": torch.log_softmax(torch.from_numpy(rng.normal(size=(20, tree.num_senones))), -1).numpy()
                .astype(np.float32)}
    exp = tmp_path / "exp"
    senones = _store(exp / "ali" / "dev" / "senones", targets)
    _store(tmp_path / "sys" / "logpost", log_post)
    tree.save(exp / "tree" / "tree.json")
    out = tmp_path / "post.md"
    assert main(["report", "posteriors", "--exp", str(exp), "--subset", "dev", "--scores",
                 f"sys={tmp_path}/sys/logpost", "--out", str(out)]) == 0
    assert "phone frame acc (%)" in out.read_text()
    d = stored_posterior_stats(tmp_path / "sys" / "logpost", senones, senone_phones=senone_phone_ids(tree))
    assert d["phone_acc"] == pytest.approx(d["top1_acc"])  # one senone per phone: the same thing
    assert d["phone_cross_entropy"] == pytest.approx(d["cross_entropy"])
