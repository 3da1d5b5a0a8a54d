"""Fixtures of the LM tests (helpers live in ``lm_fixtures``)."""

from __future__ import annotations

import pytest
from lm_fixtures import random_lm

from asr_kd.lm.model import BackoffLM


@pytest.fixture
def trigram() -> BackoffLM:
    return random_lm()
