"""Fixtures: the tiny data with a small aligner trained on it (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

TRAIN, DEV = "train-clean-5", "dev-clean-2"
#: Small enough to train in seconds on 20 utterances; the tree still splits.
TINY_TREE_ARGS = ["--num-senones", "150", "--mono-iters", "2", "--mono-gaussians", "150", "--tri-iters", "2",
                  "--tri-gaussians", "250", "--min-leaf-frames", "50", "--jobs", "1"]


def link_exp(source: Path, dest: Path, names: tuple[str, ...] = ("manifests", "lang", "feats")) -> Path:
    """A writable experiment dir sharing ``source``'s ``names`` (symlinks)."""
    dest.mkdir(parents=True)
    for name in names:
        (dest / name).symlink_to((source / name).resolve())
    return dest


@pytest.fixture(scope="session")
def tiny_tree_args() -> list[str]:
    return TINY_TREE_ARGS


@pytest.fixture(scope="session")
def linked_exp():
    """:func:`link_exp` for tests that need an experiment dir of their own."""
    return link_exp


@pytest.fixture(scope="session")
def aligned_exp(tiny_exp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``asr-kd tree`` on the tiny train set and ``asr-kd align`` of the tiny dev set (read-only use)."""
    from asr_kd.cli import main

    exp = link_exp(tiny_exp, tmp_path_factory.mktemp("align") / "exp")
    assert main(["tree", "--exp", str(exp), "--subset", TRAIN, *TINY_TREE_ARGS]) == 0
    assert main(["align", "--exp", str(exp), "--subset", DEV, "--jobs", "1"]) == 0
    return exp
