"""WER against hand counts, and the Kaldi-style alignment file."""

from __future__ import annotations

import json

import pytest

from asr_kd.data.manifest import Utterance, write_manifest
from asr_kd.scoring.wer import align_words, read_references, read_text, score, write_text
from asr_kd.utils.errors import AsrKdError

REFS = {
    "u1": "THE CAT SAT ON THE MAT",  # hyp: 1 substitution (CAT->BAT), 1 deletion (ON)
    "u2": "A DOG",                   # hyp: 1 insertion (BIG)
    "u3": "HELLO WORLD",             # correct
    "u4": "NO HYPOTHESIS HERE",      # missing: 3 deletions
}
HYPS = {"u1": "THE BAT SAT THE MAT", "u2": "A BIG DOG", "u3": "hello world"}


def test_wer_matches_a_hand_count(tmp_path) -> None:
    write_text(tmp_path / "hyp.txt", HYPS)
    summary = score(REFS, read_text(tmp_path / "hyp.txt"), tmp_path / "wer.json", tmp_path / "per_utt.txt")
    # 13 reference words; S=1, D=1+3, I=1 -> 6 errors
    assert (summary.ref_words, summary.substitutions, summary.deletions, summary.insertions) == (13, 1, 4, 1)
    assert summary.wer == pytest.approx(6 / 13)
    assert summary.sentence_errors == 3
    assert summary.missing_hypotheses == 1

    report = json.loads((tmp_path / "wer.json").read_text())
    assert report["missing_hypotheses"] == ["u4"]
    assert report["utterances"]["u1"] == {
        "ref_words": 6, "substitutions": 1, "deletions": 1, "insertions": 0, "wer": pytest.approx(2 / 6)
    }
    lines = (tmp_path / "per_utt.txt").read_text().splitlines()
    assert lines[:4] == [
        "u1 ref  THE CAT SAT ON  THE MAT",
        "u1 hyp  THE BAT SAT *** THE MAT",
        "u1 op   C   S   C   D   C   C",
        "u1 #csid 4 1 0 1",
    ]
    assert lines[6] == "u2 op   C I   C"


def test_hypothesis_without_reference_is_an_error() -> None:
    with pytest.raises(AsrKdError, match="no reference"):
        align_words({"u1": "A"}, {"u1": "A", "stray": "B"})


def test_duplicate_utterance_in_text_file(tmp_path) -> None:
    (tmp_path / "text").write_text("u1 A B\nu1 C\n")
    with pytest.raises(AsrKdError, match="appears twice"):
        read_text(tmp_path / "text")


def test_references_from_a_manifest(tmp_path) -> None:
    utts = [Utterance(u, f"/a/{u}.flac", 16000, 1.0, "19", "F", "198", t) for u, t in REFS.items()]
    write_manifest(tmp_path / "dev.tsv", utts)
    assert read_references(tmp_path / "dev.tsv") == REFS
