"""Shared fixtures: the tiny real LibriSpeech subset in data/, prepared once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_ROOT = REPO / "data" / "LibriSpeech"
TRAIN, DEV = "train-clean-5", "dev-clean-2"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    skip_slow = pytest.mark.skip(reason="slow: use --run-slow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_root() -> Path:
    """The LibriSpeech-layout tiny data shipped in data/ (20 train + 10 dev utterances)."""
    return TINY_ROOT


@pytest.fixture(scope="session")
def tiny_exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An experiment dir with manifests, lexicon and features of the tiny data (read-only use)."""
    from asr_kd.cli import main

    exp = tmp_path_factory.mktemp("tiny_exp")
    assert main(["prepare", "--root", str(TINY_ROOT), "--subsets", TRAIN, DEV, "--exp", str(exp)]) == 0
    assert main(["features", "--exp", str(exp), "--subsets", TRAIN, DEV, "--jobs", "1",
                 "--utts-per-shard", "8"]) == 0
    return exp
