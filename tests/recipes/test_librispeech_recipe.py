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
    """Run the wrapper with this interpreter's environment's ``asr-kd`` first on PATH, importing this checkout."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(["bash", str(RUN), *args], cwd=REPO, env=env, capture_output=True, text=True)


@pytest.fixture
def ls_root(tiny_root: Path, tmp_path: Path) -> Path:
    """The tiny data under the folder names of full LibriSpeech: dev-clean-2 appears as dev-clean, the
    wrapper's default dev subset, so the smoke test runs the recipe's own defaults."""
    root = tmp_path / "LibriSpeech"
    root.mkdir()
    (root / "SPEAKERS.TXT").symlink_to(tiny_root / "SPEAKERS.TXT")
    (root / "train-clean-5").symlink_to(tiny_root / "train-clean-5")
    (root / "dev-clean").symlink_to(tiny_root / "dev-clean-2")
    return root


def test_root_is_required() -> None:
    result = run_recipe("--stop-stage", "0")
    assert result.returncode != 0 and "--root is required" in result.stderr


def test_stage_0_prepares_the_union_as_one_manifest_and_its_validation_split(ls_root: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    result = run_recipe("--root", str(ls_root), "--exp", str(exp), "--train-parts", "train-clean-5 dev-clean",
                        "--train-name", "both", "--stop-stage", "0")
    assert result.returncode == 0, result.stderr
    assert len(read_manifest(exp / "manifests" / "both.tsv")) == 30
    assert (exp / "manifests" / "dev-clean.tsv").exists()
    assert len((exp / "splits" / "both" / "valid.txt").read_text().split()) == 1  # 0.2% of 30: at least one
    assert not (exp / "feats").exists()  # --stop-stage 0 runs nothing of the mini recipe


@pytest.mark.slow
def test_smoke_stages_0_to_7(ls_root: Path, tmp_path: Path) -> None:
    """The recipe's own subset names (train-960 of --train-parts, dev-clean); a tiny model and few seeds."""
    exp = tmp_path / "exp"
    result = run_recipe(
        "--root", str(ls_root), "--exp", str(exp), "--train-parts", "train-clean-5",
        "--model-conf", "recipes/mini_librispeech/conf/dnn_tiny.yaml", "--num-senones", "150",
        "--tree-args", "--mono-iters 2 --tri-iters 1 --min-leaf-frames 20", "--members", "2", "--seeds", "0",
        "--temperatures", "2", "--device", "cpu", "--lm", "train", "--recovery", "false", "--stop-stage", "7")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in (exp / "manifests").glob("*.tsv")) == ["dev-clean.tsv", "train-960.tsv"]
    assert (exp / "ali" / "train-960").is_dir()
    assert (exp / "e1" / "eval" / "student_T2_seed0" / "decode" / "hyp.wer.json").exists()
    assert (exp / "results" / "e1.md").exists()  # --results defaults to <exp>/results, not the repo
