"""The GPU script runs on the CPU in its dry-run mode (toy sizes), so a GPU session can trust it."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import gpu_checks


def test_dry_run_corpus_and_training_loop(tmp_path):
    results = gpu_checks.main(["--dry-run", "--out", str(tmp_path), "--parts", "corpus", "loop"])
    loop = results["loop"]
    assert "error" not in results["corpus"] and "error" not in loop, results
    for source in ("stream_resident", "stream_chunked", "memory_table", "stream_resident_distill"):
        assert loop[source] > 0 and loop[f"{source}_over_synthetic"] > 0
    assert json.loads((tmp_path / "gpu_checks.json").read_text())["loop"]["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where CUDA is missing")
def test_without_cuda_the_real_run_stops_with_a_clear_message(tmp_path):
    with pytest.raises(SystemExit, match="no CUDA device; run with --dry-run"):
        gpu_checks.main(["--out", str(tmp_path)])


@pytest.mark.slow
def test_full_dry_run_runs_every_part(tmp_path):
    results = gpu_checks.main(["--dry-run", "--out", str(tmp_path)])
    for name in ("stream_resident", "stream_chunked_2M", "memory", "distill_stream_resident"):
        assert results["trainer"][name]["exit_code"] == 0 and results["trainer"][name]["train_frames_per_s"] > 0
    assert results["ddp"]["exit_code"] == 0 and results["ddp"]["processes"] == 2
    assert results["ensemble"]["exit_code"] == 0 and results["ensemble"]["members"] == 2
