"""``asr-kd lm``: every source writes a checked ARPA, a lexicon covering it and a report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lm_fixtures import random_lm

import asr_kd.lm.kenlm
import asr_kd.lm.sources
from asr_kd.cli import main
from asr_kd.data.lexicon import Lexicon, cover_vocabulary, read_lexicon
from asr_kd.data.manifest import Utterance, write_manifest
from asr_kd.lm.arpa import read_arpa, write_arpa
from asr_kd.lm.build import side_files
from asr_kd.lm.normalisation import check_normalisation
from asr_kd.lm.sources import to_lower_case

WORDS = ["THE", "CAT", "SAT", "ON", "MAT", "DOG'S", "ZQXJ"]


def _utt(i: int, text: str) -> Utterance:
    return Utterance(f"1-2-{i:04d}", f"/audio/{i}.flac", 16000, 1.0, "1", "F", "2", text)


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    exp = tmp_path / "exp"
    write_manifest(exp / "manifests" / "train-clean-5.tsv",
                   [_utt(0, "THE CAT SAT ON THE MAT"), _utt(1, "THE DOG SAT"), _utt(2, "A SECRET LINE")])
    write_manifest(exp / "manifests" / "dev-clean-2.tsv", [_utt(3, "THE CAT SAT ON A ZEBRA")])
    (exp / "lang").mkdir()
    (exp / "lang" / "lexicon.txt").write_text("THE\tDH AH\nCAT\tK AE T\nZQXJ\tSPN\n")
    return exp


def _arpa_over(words: list[str], path: Path, **kwargs) -> Path:
    lm = random_lm(num_words=len(words) + 2, bigrams=40, trigrams=40, **kwargs)
    return write_arpa(lm.renamed(list(lm.vocab[:2]) + words), path)


def test_arpa_source_with_pruning_lexicon_and_evaluation(exp, tmp_path, capsys) -> None:
    src = _arpa_over([w.lower() for w in WORDS], tmp_path / "in.arpa")
    out = exp / "lm" / "mine.arpa"
    code = main(["lm", "--exp", str(exp), "--source", "arpa", "--arpa", str(src), "--prune", "1e-3",
                 "--eval-subset", "dev-clean-2", "--out", str(out), "--pocketsphinx-copy", str(tmp_path / "lc.arpa")])
    assert code == 0
    lm = read_arpa(out)
    assert set(lm.vocab) == {"<s>", "</s>", *WORDS}  # upper-cased, markers kept
    assert check_normalisation(lm).ok
    assert read_arpa(tmp_path / "lc.arpa").vocab == to_lower_case(lm).vocab
    files = side_files(out)
    lexicon = read_lexicon(files.lexicon)
    assert lexicon.prons["THE"] == [("DH", "AH")]  # the experiment's pronunciation wins
    assert lexicon.prons["DOG'S"] == [("D", "AO", "G", "Z")]  # CMUdict's DOG + the possessive rule
    assert "ZQXJ" not in lexicon.prons  # SPN-only in the experiment, unknown elsewhere
    assert files.no_pron.read_text().split() == ["ZQXJ"]
    report = json.loads(files.report.read_text())
    assert report["normalisation"]["ok"] and report["prune"]["threshold"] == 1e-3
    dev = report["evaluation"]["dev-clean-2"]
    assert dev["words"] == 6 and dev["oov_words"] == 2  # A, ZEBRA
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "1 LM words without pronunciation" in line and "dev-clean-2: OOV 33.33%" in line


def test_pocketsphinx_source_reads_the_trie(exp, tmp_path, monkeypatch) -> None:
    ps = pytest.importorskip("pocketsphinx")
    arpa = _arpa_over([w.lower() for w in WORDS[:5]], tmp_path / "small.arpa", suffix_closed=True)
    binary = tmp_path / "small.lm.bin"
    ps.NGramModel(ps.Config(), ps.LogMath(1.0001), str(arpa)).write(str(binary), ps.NGramModel.str_to_type("bin"))
    monkeypatch.setattr(asr_kd.lm.sources, "pocketsphinx_lm_path", lambda: binary)
    assert main(["lm", "--exp", str(exp), "--source", "pocketsphinx-en-us", "--order", "2"]) == 0
    out = exp / "lm" / "en-us.2gram.arpa"
    lm, original = read_arpa(out), read_arpa(arpa)
    assert lm.counts == original.counts[:2] and lm.vocab == tuple(w.upper() if w[0] != "<" else w
                                                                   for w in original.vocab)
    assert check_normalisation(lm).ok


def test_train_source_excludes_listed_utterances(exp, tmp_path, monkeypatch, capsys) -> None:
    seen = {}

    def fake_train(transcripts, out_path, order=3, **_):
        seen["text"], seen["order"] = list(transcripts), order
        return _arpa_over(["THE", "CAT", "SAT", "ON", "MAT", "DOG"], Path(out_path))

    monkeypatch.setattr(asr_kd.lm.kenlm, "train_arpa", fake_train)
    held_out = tmp_path / "valid_utts.txt"
    held_out.write_text("1-2-0002 some comment\n")
    assert main(["lm", "--exp", str(exp), "--subset", "train-clean-5", "--exclude-utts", str(held_out)]) == 0
    assert seen == {"text": ["THE CAT SAT ON THE MAT", "THE DOG SAT"], "order": 3}
    assert f"2 train-clean-5 transcripts (1 in {held_out} left out)" in capsys.readouterr().out
    assert (exp / "lm" / "train-clean-5.3gram.arpa").exists()
    held_out.write_text("9-9-9999\n")
    assert main(["lm", "--exp", str(exp), "--subset", "train-clean-5", "--exclude-utts", str(held_out)]) == 2


def test_bad_requests_are_one_line_errors(exp, capsys) -> None:
    assert main(["lm", "--exp", str(exp), "--subset", "dev-clean-2"]) == 2
    assert main(["lm", "--exp", str(exp)]) == 2  # no subset is assumed
    assert main(["lm", "--exp", str(exp), "--source", "arpa"]) == 2
    assert main(["lm", "--exp", str(exp), "--source", "arpa", "--arpa", str(exp / "missing.arpa")]) == 2
    err = capsys.readouterr().err
    assert "refusing to train an LM on dev-clean-2" in err and "--source arpa needs --arpa" in err
    assert "--source train needs --subset" in err
    assert "missing.arpa: ARPA file is missing" in err


def test_cover_vocabulary_policy() -> None:
    first = Lexicon({"A": [("AH",)], "B": [("SPN",)]})
    second = Lexicon({"B": [("B", "IY")], "C": [("S", "IY")], "A": [("EY",)]})
    lexicon, report = cover_vocabulary(["<s>", "A", "B", "C", "C'S", "D"], {"one": first, "two": second})
    assert lexicon.prons == {"A": [("AH",)], "B": [("B", "IY")], "C": [("S", "IY")], "C'S": [("S", "IY", "Z")]}
    assert report.by_source == {"one": 1, "two": 2, "possessive rule": 1}
    assert report.missing == ("D",)
    assert np.isclose(len(lexicon), 4)


def test_mix_with_interpolates_two_sources(exp, tmp_path) -> None:
    first = _arpa_over(["THE", "CAT", "SAT"], tmp_path / "a.arpa")
    second = _arpa_over(["THE", "DOG", "RAN"], tmp_path / "b.arpa", seed=4)
    out = exp / "lm" / "mix.arpa"
    assert main(["lm", "--exp", str(exp), "--source", "arpa", "--arpa", str(first), "--mix-with", str(second),
                 "--mix-weight", "0.6", "--out", str(out)]) == 0
    lm = read_arpa(out)
    assert set(lm.vocab) == {"<s>", "</s>", "THE", "CAT", "SAT", "DOG", "RAN"} and check_normalisation(lm).ok
    report = json.loads(side_files(out).report.read_text())
    assert report["mixed_with"] == str(second) and report["mix_weight"] == 0.6
