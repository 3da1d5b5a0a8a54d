"""Reading sphinx trie binaries: a tiny model written by pocketsphinx itself, and (slow) en-us."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from lm_fixtures import random_lm

from asr_kd.lm.arpa import write_arpa
from asr_kd.lm.normalisation import check_normalisation
from asr_kd.lm.sphinx_trie import SPHINX_LOG_BASE, read_sphinx_trie
from asr_kd.utils.errors import AsrKdError

ps = pytest.importorskip("pocketsphinx")
LOG10_UNIT = math.log10(SPHINX_LOG_BASE)


def sphinx_log10_prob(model, lm, rows: np.ndarray) -> np.ndarray:
    """pocketsphinx's own probability: ``prob([w, h_last, ..., h_first])`` in integer log units."""
    return np.array([model.prob([lm.vocab[w] for w in row[::-1]]) * LOG10_UNIT for row in rows])


def make_trie(tmp_path: Path, lm) -> Path:
    arpa = write_arpa(lm, tmp_path / "small.arpa")
    model = ps.NGramModel(ps.Config(), ps.LogMath(SPHINX_LOG_BASE), str(arpa))
    path = tmp_path / "small.lm.bin"
    model.write(str(path), ps.NGramModel.str_to_type("bin"))
    return path


def test_suffix_closed_model_reads_back_exactly(tmp_path) -> None:
    lm = random_lm(suffix_closed=True)
    trie = read_sphinx_trie(make_trie(tmp_path, lm))
    assert trie.vocab == lm.vocab and trie.counts == lm.counts
    # Nearly every value has its own quantisation bin in a model this small; pocketsphinx sorts
    # the bin values with an integer comparator, so values within ~1 log unit (4.3e-5) may swap.
    for n in (1, 2, 3):
        np.testing.assert_array_equal(trie.ngram_words(n), lm.ngram_words(n))
        np.testing.assert_allclose(trie.tables[n - 1].log_prob, np.maximum(lm.tables[n - 1].log_prob, -99), atol=1e-4)
        np.testing.assert_allclose(trie.tables[n - 1].log_bow, lm.tables[n - 1].log_bow, atol=1e-4)


def test_probabilities_match_pocketsphinx(tmp_path) -> None:
    lm = random_lm(seed=3)  # not suffix-closed: the trie adds back-off "blank" bigrams
    path = make_trie(tmp_path, lm)
    trie = read_sphinx_trie(path)
    assert trie.counts[1] > lm.counts[1]
    model = ps.NGramModel(ps.Config(), ps.LogMath(SPHINX_LOG_BASE), str(path))
    rng = np.random.default_rng(0)
    queries = np.concatenate([lm.ngram_words(3), rng.integers(1, len(lm.vocab), (300, 3))])
    # pocketsphinx truncates to integer log units (4.3e-5 in log10)
    np.testing.assert_allclose(trie.log_prob(queries), sphinx_log10_prob(model, trie, queries), atol=1e-4)


def test_not_a_trie_file(tmp_path) -> None:
    path = tmp_path / "x.lm.bin"
    path.write_bytes(b"Darpa Trigram LM" + bytes(100))
    with pytest.raises(AsrKdError, match="not a sphinx trie LM"):
        read_sphinx_trie(path)
    path.write_bytes(b"Trie Language Model\x03" + bytes(8))
    with pytest.raises(AsrKdError, match="truncated"):
        read_sphinx_trie(path)


@pytest.mark.slow
def test_pocketsphinx_en_us() -> None:
    from asr_kd.lm.sources import load_pocketsphinx_en_us, pocketsphinx_lm_path

    path = pocketsphinx_lm_path()
    raw = read_sphinx_trie(path)
    assert raw.counts == [72547, 2051541, 1669625]  # the header says 2,051,547 bigrams; 2,051,541 are stored
    model = ps.NGramModel(ps.Config(), ps.LogMath(SPHINX_LOG_BASE), str(path))
    rng = np.random.default_rng(0)
    for n in (1, 2, 3):
        rows = raw.ngram_words(n)[rng.choice(raw.counts[n - 1], 1000, replace=False)]
        np.testing.assert_allclose(raw.log_prob(rows), sphinx_log10_prob(model, raw, rows), atol=1e-4)
    unseen = rng.integers(0, len(raw.vocab), (1000, 3))
    np.testing.assert_allclose(raw.log_prob(unseen), sphinx_log10_prob(model, raw, unseen), atol=1e-4)
    assert not check_normalisation(raw).ok  # 16-bit quantisation: see asr_kd.lm.sources
    assert check_normalisation(load_pocketsphinx_en_us()).ok
