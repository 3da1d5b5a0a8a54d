"""ARPA handling: OOV words warned and counted, malformed files rejected clearly, lmplz optional."""

from __future__ import annotations

import gzip
import logging
import shutil

import pytest
from decoding_fixtures import TOY_ARPA

from asr_kd.data.lexicon import PHONES
from asr_kd.decoding.grammar import make_grammar_fst, read_arpa_summary
from asr_kd.decoding.lexicon_fst import make_lexicon_fst
from asr_kd.decoding.lm import find_lmplz, train_arpa
from asr_kd.utils.errors import AsrKdError


@pytest.fixture
def lang(toy_lexicon):
    return make_lexicon_fst(toy_lexicon, PHONES)


def test_summary_of_a_valid_arpa(toy_arpa) -> None:
    summary = read_arpa_summary(toy_arpa)
    assert summary.ngram_counts == {1: 12, 2: 9}
    assert summary.order == 2
    assert "CAT" in summary.vocabulary


def test_words_missing_from_the_lexicon_are_warned_and_counted(tmp_path, lang, caplog) -> None:
    arpa = tmp_path / "oov.arpa"
    arpa.write_text(
        TOY_ARPA.replace("ngram 1=12", "ngram 1=14").replace("ngram 2=9", "ngram 2=10")
        .replace("-1.4 DOGS -0.3\n", "-1.4 DOGS -0.3\n-2.0 ZEBRA -0.3\n-2.0 QUAGGA\n")
        .replace("-0.4 DOGS </s>\n", "-0.4 DOGS </s>\n-0.3 ZEBRA </s>\n")
    )
    with caplog.at_level(logging.WARNING, logger="asr_kd"):
        g, report = make_grammar_fst(arpa, lang)
    assert report.missing_words == ("ZEBRA", "QUAGGA")
    assert "2 of 14 LM words are not in the lexicon" in caplog.text
    assert g.num_states > 0


def test_gzipped_arpa_is_accepted(tmp_path, toy_arpa, lang) -> None:
    gz = tmp_path / "toy.arpa.gz"
    with open(toy_arpa, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    g, report = make_grammar_fst(gz, lang)
    assert report.missing_words == () and g.num_states > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just some text\n", "no \\\\data\\\\ header"),
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0 </s>\n", "declares 2 unigrams"),
        ("\\data\\\nngram 1=1\n\n\\1-grams:\nfoo </s>\n\\end\\\n", "no log-probability"),
        (TOY_ARPA.replace("-0.4 THE CAT\n", "-0.4 THE\n"), "malformed ARPA file"),
    ],
    ids=["no-header", "count-mismatch", "bad-unigram", "bad-bigram"],
)
def test_malformed_arpa_gives_a_clear_error(tmp_path, lang, text, message) -> None:
    arpa = tmp_path / "bad.arpa"
    arpa.write_text(text)
    with pytest.raises(AsrKdError, match=message) as err:
        make_grammar_fst(arpa, lang)
    assert str(arpa) in str(err.value)


def test_missing_lmplz_names_the_install_script(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ASR_KD_LMPLZ", str(tmp_path / "nope"))
    with pytest.raises(AsrKdError, match="not an executable lmplz"):
        find_lmplz()


def test_lmplz_trains_a_usable_arpa(tmp_path, lang) -> None:
    try:
        find_lmplz()
    except AsrKdError:
        pytest.skip("KenLM lmplz not installed (tools/install_kenlm.sh)")
    text = ["THE CAT SAT ON THE MAT", "TWO DOGS", "THE CAT SAT", "A CAT SAT ON A MAT"] * 3
    arpa = train_arpa(text, tmp_path / "lm.arpa", order=3)
    summary = read_arpa_summary(arpa)
    assert summary.order == 3
    _, report = make_grammar_fst(arpa, lang)
    assert report.missing_words == ("<unk>",)  # lmplz always adds <unk>; our lexicon maps OOVs to SPN


def test_bigram_with_a_word_that_has_no_unigram_is_refused(tmp_path) -> None:
    """arpa2fst would drop the n-gram silently (issue 14.11)."""
    arpa = tmp_path / "damaged.arpa"
    arpa.write_text(TOY_ARPA.replace("-0.6 TWO DOGS\n", "-0.6 TWO DOG\n"))
    with pytest.raises(AsrKdError, match=r"damaged.arpa:27: 2-gram 'TWO DOG' has the word 'DOG', which is not in"):
        read_arpa_summary(arpa)
