"""ARPA files: exact round trip, clear errors on malformed files."""

from __future__ import annotations

import numpy as np
import pytest

from asr_kd.lm.arpa import read_arpa, write_arpa
from asr_kd.utils.errors import AsrKdError


@pytest.mark.parametrize("name", ["lm.arpa", "lm.arpa.gz"])
def test_round_trip(tmp_path, trigram, name) -> None:
    path = write_arpa(trigram, tmp_path / name)
    back = read_arpa(path)
    assert back.vocab == trigram.vocab and back.counts == trigram.counts
    for n in (1, 2, 3):
        np.testing.assert_array_equal(back.ngram_words(n), trigram.ngram_words(n))
        np.testing.assert_allclose(back.tables[n - 1].log_prob, np.maximum(trigram.tables[n - 1].log_prob, -99),
                                   atol=5e-7)
        np.testing.assert_allclose(back.tables[n - 1].log_bow, trigram.tables[n - 1].log_bow, atol=5e-7)


GOOD = ("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-0.5 </s>\n-99 <s> -0.2\n-0.3 A -0.1\n\n"
        "\\2-grams:\n-0.1 <s> A\n\n\\end\\\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no header\n", "no \\\\data\\\\ header"),
        (GOOD.replace("ngram 2=1", "ngram 2=2"), "declares 2 2-grams"),
        (GOOD.replace("-0.1 <s> A", "-0.1 <s>"), r"lm.arpa:11: a 2-gram line needs"),
        (GOOD.replace("-0.1 <s> A", "x <s> A"), r"lm.arpa:11: 'x' is not a number"),
        (GOOD.replace("-0.1 <s> A", "-0.1 <s> B"), r"lm.arpa:11: word 'B' of a 2-gram is not a unigram"),
        (GOOD.replace("\\end\\\n", ""), "no \\\\end\\\\ marker"),
    ],
)
def test_malformed_files_are_named(tmp_path, text, message) -> None:
    path = tmp_path / "lm.arpa"
    path.write_text(text)
    with pytest.raises(AsrKdError, match=message):
        read_arpa(path)


def test_a_valid_file_reads(tmp_path) -> None:
    path = tmp_path / "lm.arpa"
    path.write_text(GOOD)
    lm = read_arpa(path)
    assert lm.counts == [3, 1]
    assert lm.log_prob(np.array([[lm.word_id["<s>"], lm.word_id["A"]]]))[0] == pytest.approx(-0.1)


def test_sentence_start_is_never_predicted(tmp_path) -> None:
    path = tmp_path / "lm.arpa"
    path.write_text(GOOD.replace("-99 <s> -0.2", "0 <s> -0.2"))  # KenLM writes P(<s>) = 1
    lm = read_arpa(path)
    assert lm.tables[0].log_prob[lm.word_id["<s>"]] == -99.0
