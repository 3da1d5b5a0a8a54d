"""Report tables (mean ± std over seeds, atomic JSON) and PNG plots from small inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asr_kd.reports import (
    format_mean_std,
    frame_labels_to_segments,
    markdown_table,
    mean_std,
    mel_bin_centers_hz,
    plot_entropy_vs_temperature,
    plot_learning_curves,
    plot_results_bars,
    plot_utterance,
    posterior_entropy,
    seed_summary,
    write_markdown_table,
    write_results_json,
)
from asr_kd.utils.errors import AsrKdError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_bytes: int = 5000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 300 and height > 200 and len(data) > min_bytes
    assert not list(path.parent.glob(f".{path.name}.*"))  # no temporary file left behind


def test_mean_std_uses_sample_std() -> None:
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([5.0]) == (5.0, 0.0)
    assert format_mean_std([10.0, 12.0], digits=1) == "11.0 ± 1.4"
    assert format_mean_std([7.256]) == "7.26"
    assert seed_summary([1, 3]) == {"mean": 2.0, "std": pytest.approx(np.sqrt(2)), "n": 2, "values": [1.0, 3.0]}
    with pytest.raises(AsrKdError):
        mean_std([])


def test_markdown_table(tmp_path: Path) -> None:
    rows = {"baseline": {"frame acc (%)": [58.9, 59.3, 59.1], "WER (%)": [10.0, 10.4, 10.2]},
            "10x ensemble": {"frame acc (%)": 61.2, "WER (%)": "n/a"},
            "distilled": {"WER (%)": [9.8, 10.0, 9.9]}}
    text = markdown_table(rows, caption="`asr-kd ...`")
    assert text.splitlines() == [
        "`asr-kd ...`", "",
        "| system | frame acc (%) | WER (%) |",
        "|---|---:|---:|",
        "| baseline | 59.10 ± 0.20 | 10.20 ± 0.20 |",
        "| 10x ensemble | 61.20 | n/a |",
        "| distilled | – | 9.90 ± 0.10 |",
    ]
    path = write_markdown_table(tmp_path / "t.md", rows, columns=["WER (%)"], row_header="model", digits=1)
    assert path.read_text().splitlines()[2] == "| baseline | 10.2 ± 0.2 |"


def test_results_json_accepts_numpy(tmp_path: Path) -> None:
    path = write_results_json(tmp_path / "r.json", {"wer": np.float32(9.5), "acc": np.array([0.5, 0.6]),
                                                    "model": tmp_path / "m.pt", "n": np.int64(3)})
    assert json.loads(path.read_text()) == {"wer": 9.5, "acc": [0.5, 0.6], "model": str(tmp_path / "m.pt"), "n": 3}


def test_learning_curves_from_csv_rows_and_several_runs(tmp_path: Path) -> None:
    rows = [{"epoch": e, "step": 100 * e, "train_loss": 3 / e, "dev_loss": 3.2 / e, "train_frame_acc": 0.3 + 0.05 * e,
             "dev_frame_acc": 0.28 + 0.04 * e, "lr": 1e-3} for e in range(1, 6)]
    csv_path = tmp_path / "log.csv"
    csv_path.write_text(",".join(rows[0]) + "\n" + "\n".join(",".join(str(v) for v in r.values()) for r in rows))
    assert_png(plot_learning_curves(csv_path, tmp_path / "curves.png", title="dnn mini"))
    brief_rows = [{"epoch": r["epoch"], "step": r["step"], "loss": r["train_loss"], "train_acc": 0.5, "dev_acc": 0.4}
                  for r in rows]
    assert_png(plot_learning_curves({"seed 0": rows, "seed 1": brief_rows}, tmp_path / "seeds.png"))
    with pytest.raises(AsrKdError, match="does not exist"):
        plot_learning_curves(tmp_path / "missing.csv", tmp_path / "x.png")


def test_results_bars(tmp_path: Path) -> None:
    path = plot_results_bars({"baseline": [10.0, 10.4, 10.2], "ensemble": [9.1], "distilled": [9.6, 9.9]},
                             tmp_path / "bars.png", ylabel="WER (%)", title="E1")
    assert_png(path)
    with pytest.raises(AsrKdError, match="empty"):
        plot_results_bars({"a": []}, tmp_path / "x.png")


def test_entropy_rises_with_temperature(tmp_path: Path) -> None:
    logits = np.random.default_rng(0).normal(0, 4, (200, 50))
    entropy = posterior_entropy(logits, [1, 2, 5, 20])
    assert entropy.shape == (4, 200) and np.all(np.diff(entropy.mean(1)) > 0)
    assert entropy.max() <= np.log(50) + 1e-9
    assert_png(plot_entropy_vs_temperature(logits, [1, 2, 5, 20], tmp_path / "entropy.png"))


def test_utterance_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames, senones = 120, 30
    phones = np.repeat([0, 5, 7, 0], [20, 40, 35, 25])
    segments = frame_labels_to_segments(phones, ["SIL", "A", "B", "C", "D", "AH", "E", "T"])
    assert [label for label, _, _ in segments] == ["SIL", "AH", "T", "SIL"]
    np.testing.assert_allclose([seg[1:] for seg in segments], [(0, 0.2), (0.2, 0.6), (0.6, 0.95), (0.95, 1.2)])
    logits = rng.normal(0, 3, (frames, senones))
    log_post = {name: logits * scale - np.log(np.exp(logits * scale).sum(1, keepdims=True))
                for name, scale in (("teacher", 1.0), ("student", 0.6))}
    path = plot_utterance(rng.normal(0, 1, (frames, 40)), tmp_path / "utt.png", segments, log_post, top_k=5,
                          senone_names={i: f"s{i}" for i in range(senones)}, title="utt")
    assert_png(path)
    assert_png(plot_utterance(rng.normal(0, 1, (frames, 40)), tmp_path / "spec.png"))  # spectrogram only
    with pytest.raises(AsrKdError, match="frames"):
        plot_utterance(np.zeros((10, 40)), tmp_path / "bad.png", posteriors={"t": np.zeros((9, 3))})


def test_mel_centres_are_increasing_and_inside_the_band() -> None:
    centres = mel_bin_centers_hz(40, 20.0, 8000.0)
    assert centres.shape == (40,) and np.all(np.diff(centres) > 0) and 20 < centres[0] < centres[-1] < 8000
