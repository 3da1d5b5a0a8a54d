"""Smoke test: every benchmark module's ``main()`` runs on the tiny data with tiny settings.

Figures are not checked (no timing assertions): only that each benchmark returns its keys.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

import pytest

from benchmarks.run import CPU_BENCHMARKS

#: name -> (tiny settings, keys the result must have)
CASES = {
    "features": ([], {"x_realtime_per_core", "audio_s"}),
    "align": ([], {"x_realtime_per_core", "x_realtime_wall", "tree_train_s"}),
    "dnn_train": (["--preset", "tiny", "--batch-size", "64", "--steps", "2"],
                  {"frames_per_s", "flop_efficiency", "loader_overhead"}),
    "conformer_train": (["--preset", "tiny", "--max-frames", "1000", "--steps", "1", "--repeats", "1"],
                        {"frames_per_s", "flop_efficiency", "loader_overhead"}),
    "distill": (["--student", "tiny", "--teacher", "tiny", "--num-senones", "50", "--steps", "2", "--repeats", "1",
                 "--rank", "12"],
                {"topk_over_hard", "online_over_hard", "lowrank_over_hard", "bytes_per_frame_topk",
                 "bytes_per_frame_dense", "bytes_per_frame_lowrank"}),
    "decode": (["--train-steps", "2", "--nbest", "5"], {"graph_build_s", "rtf", "cpu_rtf", "lm", "lattice_cpu_rtf"}),
    "datapath": (["--hours", "0.02", "--chunk-frames", "3000", "--train-steps", "10", "--preset", "tiny"],
                 {"bytes_per_frame", "data_frames_per_s", "datapath_overhead", "peak_rss_mb"}),
    "integrity": (["--presets", "tiny", "--utts", "4", "--frames", "50", "--repeats", "1"],
                  {"checksum_ms_tiny", "checksum_fraction_tiny", "finite_check_ms", "shard_first_read_ms"}),
}

def test_every_cpu_benchmark_has_a_case() -> None:
    assert set(CASES) == set(CPU_BENCHMARKS)


@pytest.mark.parametrize("name", list(CASES))
def test_benchmark_main_returns_its_figures(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the benchmarks' experiment dirs go here
    # no lmplz, as on a fresh clone: the decode benchmark falls back to its own unigram LM
    monkeypatch.setenv("ASR_KD_LMPLZ", "/nonexistent/lmplz")
    argv, keys = CASES[name]
    result = importlib.import_module(CPU_BENCHMARKS[name]).main(argv)
    assert "error" not in result
    assert keys <= set(result)
    if name == "decode":
        assert result["lm"] == "unigram (no lmplz)"


def test_lm_benchmark_on_a_small_trie(tmp_path: Path) -> None:
    ps = pytest.importorskip("pocketsphinx")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lm"))
    from lm_fixtures import random_lm

    from asr_kd.lm import write_arpa
    from benchmarks.bench_lm import main

    arpa = write_arpa(random_lm(suffix_closed=True), tmp_path / "small.arpa")
    trie = tmp_path / "small.lm.bin"
    ps.NGramModel(ps.Config(), ps.LogMath(1.0001), str(arpa)).write(str(trie), ps.NGramModel.str_to_type("bin"))
    result = main(["--trie", str(trie), "--prune", "1e-3"])
    assert {"read_trie_s", "check_s", "raw_normalisation", "prune_s", "pruned_counts"} <= set(result)
    assert result["renormalised_max_abs_error"] < 1e-6  # float32 unigrams sum to 1 within 1e-7


def test_specialists_benchmark_on_small_sizes() -> None:
    from benchmarks.bench_specialists import main

    result = main(["--frames", "64", "--num-senones", "50", "--clusters", "4", "--cluster-size", "5",
                   "--max-steps", "5", "--repeats", "1"])
    assert {"em_frames_per_s", "lbfgs_frames_per_s", "em_max_grad", "lbfgs_objective"} <= set(result)
    assert result["em_objective"] <= result["objective_at_generalist"]
