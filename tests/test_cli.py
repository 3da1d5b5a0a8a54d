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
