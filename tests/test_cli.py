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
