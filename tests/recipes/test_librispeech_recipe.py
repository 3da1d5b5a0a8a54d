"""recipes/librispeech/run.sh: the 960 h wrapper around the mini recipe, on the tiny data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asr_kd.data import read_manifest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "recipes" / "librispeech" / "run.sh"


def run_recipe(*args: str) -> subprocess.CompletedProcess:
    """Run the wrapper with this interpreter's environment's ``asr-kd`` first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", str(RUN), *args], cwd=REPO, env=env, capture_output=True, text=True)


def test_root_is_required() -> None:
    result = run_recipe("--stop-stage", "0")
    assert result.returncode != 0 and "--root is required" in result.stderr


def test_stage_0_prepares_the_union_as_one_manifest(tiny_root: Path, tmp_path: Path) -> None:
    result = run_recipe("--root", str(tiny_root), "--exp", str(tmp_path), "--train-parts", "train-clean-5 dev-clean-2",
                        "--train-name", "both", "--dev", "dev-clean-2", "--stop-stage", "0")
    assert result.returncode == 0, result.stderr
    assert len(read_manifest(tmp_path / "manifests" / "both.tsv")) == 30
    assert not (tmp_path / "feats").exists()  # --stop-stage 0 runs nothing of the mini recipe


@pytest.mark.slow
def test_smoke_stages_0_to_7(tiny_root: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    result = run_recipe(
        "--root", str(tiny_root), "--exp", str(exp), "--train-parts", "train-clean-5", "--dev", "dev-clean-2",
        "--model-conf", "recipes/mini_librispeech/conf/dnn_tiny.yaml", "--num-senones", "150",
        "--tree-args", "--mono-iters 2 --tri-iters 1 --min-leaf-frames 20", "--members", "2", "--seeds", "0",
        "--temperatures", "2", "--device", "cpu", "--lm", "train", "--stop-stage", "7")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in (exp / "manifests").glob("*.tsv")) == ["dev-clean-2.tsv", "train-960.tsv"]
    assert (exp / "ali" / "train-960").is_dir()
    assert (exp / "e1" / "eval" / "student_T2_seed0" / "decode" / "hyp.wer.json").exists()
    assert (exp / "results" / "e1.md").exists()  # --results defaults to <exp>/results, not the repo
