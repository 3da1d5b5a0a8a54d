"""Fixtures of the decoding tests (helpers live in ``decoding_fixtures``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from decoding_fixtures import TOY_ARPA, TOY_PRONS

from asr_kd.data.lexicon import Lexicon


@pytest.fixture
def toy_lexicon() -> Lexicon:
    return Lexicon({w: list(p) for w, p in TOY_PRONS.items()})


@pytest.fixture
def toy_lexicon_file(tmp_path: Path) -> Path:
    path = tmp_path / "lexicon.txt"
    path.write_text("".join(f"{w}\t{' '.join(p)}\n" for w, prons in TOY_PRONS.items() for p in prons))
    return path


@pytest.fixture
def toy_arpa(tmp_path: Path) -> Path:
    path = tmp_path / "toy.arpa"
    path.write_text(TOY_ARPA)
    return path
