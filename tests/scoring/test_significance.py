"""Paired bootstrap of WER differences (asr_kd.scoring.significance, ``asr-kd report significance``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asr_kd.cli import main
from asr_kd.scoring.significance import paired_bootstrap, read_counts
from asr_kd.scoring.wer import score
from asr_kd.utils.errors import AsrKdError

REFS = {f"u{i:02d}": "the cat sat on the mat" for i in range(40)}


def _score(tmp_path: Path, name: str, hyps: dict[str, str]) -> Path:
    out = tmp_path / f"{name}.wer.json"
    score(REFS, hyps, out, tmp_path / f"{name}.per_utt.txt")
    return out


def test_a_consistent_improvement_is_significant_and_noise_is_not(tmp_path: Path) -> None:
    bad = _score(tmp_path, "bad", {u: "the cat sat on a hat" for u in REFS})  # 2 errors in every utterance
    good = _score(tmp_path, "good", {u: "the cat sat on the hat" for u in REFS})  # 1
    r = paired_bootstrap(read_counts([bad]), read_counts([good]), samples=2000)
    assert r.wer_a == pytest.approx(2 / 6) and r.delta == pytest.approx(-1 / 6)
    assert r.ci_low == pytest.approx(-1 / 6) and r.ci_high == pytest.approx(-1 / 6)  # no spread: same gain everywhere
    assert r.prob_b_better == 1.0

    # B better on half the utterances, worse on the other half: an interval around 0
    mixed = {u: ("the cat sat on the hat" if i % 2 else "the dog sat on a hat") for i, u in enumerate(REFS)}
    r = paired_bootstrap(read_counts([bad]), read_counts([_score(tmp_path, "mixed", mixed)]), samples=2000)
    assert r.delta == pytest.approx(0.0) and r.ci_low < 0 < r.ci_high and 0.3 < r.prob_b_better < 0.7


def test_seeds_are_averaged_per_utterance(tmp_path: Path) -> None:
    one = _score(tmp_path, "s0", {u: "the cat sat on the mat" for u in REFS})
    three = _score(tmp_path, "s1", {u: "a dog sat on a mat" for u in REFS})
    counts = read_counts([one, three])
    np.testing.assert_allclose(counts.errors, 1.5)
    assert counts.wer == pytest.approx(1.5 / 6)


def test_other_utterances_are_refused(tmp_path: Path) -> None:
    full = _score(tmp_path, "full", {u: "the cat" for u in REFS})
    fewer = tmp_path / "fewer.wer.json"
    data = json.loads(full.read_text())
    data["utterances"].pop("u00")
    fewer.write_text(json.dumps(data))
    with pytest.raises(AsrKdError, match="scores other utterances"):
        read_counts([full, fewer])
    with pytest.raises(AsrKdError, match="not comparable"):
        paired_bootstrap(read_counts([full]), read_counts([fewer]))
    empty = tmp_path / "empty.wer.json"
    empty.write_text(json.dumps({"utterances": {"u00": {"substitutions": 0, "deletions": 0, "insertions": 1,
                                                        "ref_words": 0}}}))
    with pytest.raises(AsrKdError, match="no reference words"):
        read_counts([empty])
    (tmp_path / "hyp.txt").write_text("u00 the cat\n")
    with pytest.raises(AsrKdError, match="not an `asr-kd score` JSON"):
        read_counts([tmp_path / "hyp.txt"])


def test_report_significance_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = _score(tmp_path, "bad", {u: "the cat sat on a hat" for u in REFS})
    good = _score(tmp_path, "good", {u: "the cat sat on the hat" for u in REFS})
    out = tmp_path / "sig.md"
    assert main(["report", "significance", "--compare", f"base={bad}", f"new={good}", "--samples", "500",
                 "--out", str(out)]) == 0
    assert "new - base: -16.67 WER points" in capsys.readouterr().out
    assert "| new vs base | 33.33 | 16.67 | -16.67 | [-16.67, -16.67] | 1.000 | 1 / 1 |" in out.read_text()
    assert json.loads(out.with_suffix(".json").read_text())["comparisons"][0]["prob_b_better"] == 1.0
    assert main(["report", "significance", "--compare", f"base={bad}", f"base={good}", "--out", str(out)]) == 2
    assert "different names" in capsys.readouterr().err
