"""Fixtures of the training tests: a session-wide synthetic experiment and its training configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_synth import DEV, TRAIN, tiny_config, write_subset, write_validation_split

from asr_kd.training.config import ExperimentConfig


@pytest.fixture(scope="session")
def synth_exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train (16 utterances, 4 of them the validation split) and dev (6) subsets."""
    exp = tmp_path_factory.mktemp("synth_exp")
    write_subset(exp, TRAIN, 16, seed=1)
    write_subset(exp, DEV, 6, seed=2)
    write_validation_split(exp, TRAIN)
    return exp


@pytest.fixture()
def make_config(synth_exp: Path):
    """``make_config(out_dir, arch="dnn", **train_overrides)``: a few-second run of a tiny model."""

    def make(out_dir: Path, arch: str = "dnn", **train) -> ExperimentConfig:
        return tiny_config(synth_exp, out_dir, arch, **train)

    return make
