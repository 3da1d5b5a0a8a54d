import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from asr_kd.cli import build_parser, main


def test_every_command_has_help(capsys: pytest.CaptureFixture) -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001
    assert {"prepare", "features", "subset"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: asr-kd" in capsys.readouterr().out


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every (nested) sub-command as ``(argv prefix, its parser)``."""
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


def test_every_nested_command_has_help(capsys: pytest.CaptureFixture) -> None:
    commands = dict(_commands(build_parser()))
    assert {("distill", "dump-teacher"), ("distill", "train"), ("report", "table"), ("decode",)} <= set(commands)
    for argv in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--help"])
        assert exit_info.value.code == 0, argv
        assert "usage: asr-kd" in capsys.readouterr().out


def test_shared_options_have_one_default_each() -> None:
    from asr_kd.alignment.train import AlignerTrainingConfig as AlignerConfig
    from asr_kd.decoding.decoder import DecoderConfig
    from asr_kd.decoding.hclg import GraphOptions
    from asr_kd.training.config import TrainConfig

    defaults: dict[str, set] = {}
    for _, sub in _commands(build_parser()):
        for action in sub._actions:  # noqa: SLF001
            for flag in action.option_strings:
                if flag in ("--device", "--max-frames", "--threads", "--combine", "--exp", "--subset"):
                    defaults.setdefault(flag, set()).add((action.default, action.required))
    assert defaults["--max-frames"] == {(TrainConfig().max_frames, False)}
    assert defaults["--threads"] == {(TrainConfig().threads, False)}
    assert defaults["--device"] == {("cpu", False)} and defaults["--combine"] == {(None, False)}
    assert defaults["--exp"] == {(None, True)}
    assert {default for default, _ in defaults["--subset"]} == {None}  # never a corpus's subset name
    parser = build_parser()
    tree = parser.parse_args(["tree", "--exp", "e", "--subset", "s"])
    assert (tree.num_senones, tree.tri_gaussians) == (AlignerConfig().num_senones, AlignerConfig().tri_gaussians)
    decode = parser.parse_args(["decode", "--graph-dir", "g", "--scores", "s", "--out", "o"])
    assert (decode.beam, decode.max_active, decode.lattice_beam, decode.acoustic_scale) == (
        DecoderConfig().beam, DecoderConfig().max_active, DecoderConfig().lattice_beam, DecoderConfig().acoustic_scale)
    graph = parser.parse_args(["graph", "--exp", "e", "--arpa", "a"])
    assert (graph.silence_prob, graph.self_loop_scale) == (GraphOptions().silence_prob, GraphOptions().self_loop_scale)


def test_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asr_kd.cli", "prepare", "--root", str(tmp_path), "--subsets", "dev-clean",
         "--exp", str(tmp_path / "exp")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error_lines == [f"asr-kd prepare: error: {tmp_path / 'dev-clean'}: subset directory not found under "
                           f"LibriSpeech root {tmp_path}"]


def test_prepare_reports_sizes_and_oov(tiny_exp: Path) -> None:
    import json

    summary = json.loads((tiny_exp / "manifests" / "summary.json").read_text())
    assert summary["train-clean-5"]["utterances"] == 20 and summary["dev-clean-2"]["utterances"] == 10
    assert 0 <= summary["train-clean-5"]["oov_token_rate"] < 0.05
    assert (tiny_exp / "lang" / "lexicon.txt").read_text().count("\n") > 100


def test_prepare_lists_the_oov_words(tiny_exp: Path) -> None:
    """OOV words are counted in the summary and listed, with counts and pronunciations (issue 14.11)."""
    import json

    summary = json.loads((tiny_exp / "manifests" / "summary.json").read_text())
    rows = [line.split("\t") for line in (tiny_exp / "lang" / "oov_words.tsv").read_text().splitlines()]
    assert rows[0] == ["word", "pronunciation", "train-clean-5", "dev-clean-2"]
    for i, subset in ((2, "train-clean-5"), (3, "dev-clean-2")):
        assert sum(int(r[i]) for r in rows[1:]) == summary[subset]["oov_tokens"]
    assert all(r[1] for r in rows[1:]) and len({r[0] for r in rows[1:]}) == len(rows) - 1


def test_multi_line_error_messages_become_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    from asr_kd.data import cli as data_cli
    from asr_kd.utils.errors import AsrKdError

    def fail(args):
        raise AsrKdError("a.pt: first line\n  second line\n\nthird")

    monkeypatch.setattr(data_cli, "run_subset", fail)
    assert main(["subset", "--manifest", "m.tsv", "--fraction", "0.5", "--out", "o.tsv"]) == 2
    assert capsys.readouterr().err == "asr-kd subset: error: a.pt: first line second line third\n"
