from __future__ import annotations

from pathlib import Path

import pytest

from asr_kd.models import build
from asr_kd.training.config import load_config

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*/conf/*.yaml")), ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_recipe_config_loads_and_builds(path):
    config = load_config(path, ["model.num_senones=10"])
    model = build(config.model.arch, config.model.preset, input_dim=40, num_senones=10, **config.model.overrides)
    assert model.num_senones == 10
