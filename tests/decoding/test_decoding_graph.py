"""HCLG construction + kaldi-decoder on a toy lexicon/LM, cross-checked against the numpy oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from decoding_fixtures import TOY_PRONS, SyntheticTree, crafted_loglik, utterance_senones

from asr_kd.decoding.decoder import Decoder, DecoderConfig, lattice_best_path
from asr_kd.decoding.fst_arrays import fst_to_arrays
from asr_kd.decoding.hclg import GraphOptions, compile_hclg
from asr_kd.decoding.lexicon_fst import disambiguate
from asr_kd.decoding.oracle import viterbi

LN10 = math.log(10.0)
SENTENCE = ["THE", "CAT", "SAT", "ON", "THE", "MAT"]
# log10 P of SENTENCE under TOY_ARPA: <s> THE, THE CAT, CAT SAT, SAT ON, ON THE, THE MAT, MAT </s>
SENTENCE_LOG10_PROB = -(0.3 + 0.4 + 0.5 + 0.4 + 0.3 + 0.5 + 0.2)


def sentence_phones(words: list[str]) -> list[str]:
    return ["SIL", *(p for w in words for p in TOY_PRONS[w][0]), "SIL"]


@pytest.fixture(params=[1, 3], ids=["monophone", "triphone"])
def tree(request: pytest.FixtureRequest) -> SyntheticTree:
    return SyntheticTree(context_classes=request.param)


def test_disambiguation_symbols_follow_kaldi() -> None:
    prons = [("T", "UW"), ("T", "UW"), ("K", "AE", "T"), ("K", "AE", "T", "S"), ("AH",)]
    suffix, max_used = disambiguate(prons)
    # homophones get #1, #2; a prefix of another pronunciation gets #1; the rest nothing
    assert suffix == [1, 2, 1, 0, 0]
    assert max_used == 2


@pytest.mark.parametrize("self_loop_scale", [1.0, 0.1])
def test_crafted_likelihoods_decode_to_the_sentence_with_the_exact_path_cost(
    tree, toy_lexicon, toy_arpa, self_loop_scale
) -> None:
    options = GraphOptions(silence_prob=0.5, self_loop_scale=self_loop_scale, delta=1e-6)
    graph = compile_hclg(tree, toy_lexicon, toy_arpa, options)
    senones = utterance_senones(tree, sentence_phones(SENTENCE), frames_per_state=3)
    loglik = crafted_loglik(tree.num_senones, senones)
    hyp = Decoder(graph, DecoderConfig(acoustic_scale=1.0)).best_path(loglik)
    assert list(hyp.words) == SENTENCE
    assert hyp.reached_final

    # Independent cost of the intended path: LM + optional-silence choices (start and after each
    # word, p = 0.5 either way) + scaled HMM transitions (3 frames per state: 2 self-loops, 1 exit;
    # forward = 1 - self-loop probability, so both are just scaled) + acoustics.
    loop, forward = (self_loop_scale * lp for lp in tree.transition_logprobs("AH", 0))
    num_hmm_states = 3 * len(sentence_phones(SENTENCE))
    expected = (
        -SENTENCE_LOG10_PROB * LN10
        + (len(SENTENCE) + 1) * math.log(2.0)
        - num_hmm_states * (2 * loop + forward)
        - float(loglik[np.arange(len(senones)), senones].sum())
    )
    assert hyp.cost == pytest.approx(expected, abs=1e-3)

    oracle = viterbi(fst_to_arrays(graph.fst), loglik, acoustic_scale=1.0)
    assert [graph.words[w] for w in oracle.olabels] == SENTENCE
    assert oracle.cost == pytest.approx(hyp.cost, abs=1e-3)


def test_homophones_are_resolved_by_the_lm(tree, toy_lexicon, toy_arpa) -> None:
    graph = compile_hclg(tree, toy_lexicon, toy_arpa)
    senones = utterance_senones(tree, sentence_phones(["TWO", "DOGS"]))
    hyp = Decoder(graph).best_path(crafted_loglik(tree.num_senones, senones))
    assert hyp.words == ("TWO", "DOGS")  # TO DOGS only has back-off probability


def test_prefix_word_and_pronunciation_variants(toy_lexicon, toy_arpa) -> None:
    tree = SyntheticTree(context_classes=3)
    graph = compile_hclg(tree, toy_lexicon, toy_arpa)
    decoder = Decoder(graph)
    for words, phones in [(["THE", "CATS"], ["DH", "AH", "K", "AE", "T", "S"]), (["A", "CAT"], ["EY", "K", "AE", "T"])]:
        senones = utterance_senones(tree, ["SIL", *phones, "SIL"])
        assert list(decoder.best_path(crafted_loglik(tree.num_senones, senones)).words) == words


def test_decoder_matches_the_oracle_on_noise(tree, toy_lexicon, toy_arpa) -> None:
    """With a wide beam the beam search is exact, so it must find the oracle's best path."""
    graph = compile_hclg(tree, toy_lexicon, toy_arpa)
    arrays = fst_to_arrays(graph.fst)
    decoder = Decoder(graph, DecoderConfig(acoustic_scale=0.5, beam=1e4, max_active=100_000))
    rng = np.random.default_rng(1)
    for _ in range(3):
        loglik = rng.normal(-5.0, 2.0, size=(40, tree.num_senones)).astype(np.float32)
        hyp = decoder.best_path(loglik)
        oracle = viterbi(arrays, loglik, acoustic_scale=0.5)
        assert hyp.cost == pytest.approx(oracle.cost, abs=1e-3)
        assert hyp.words == tuple(graph.words[w] for w in oracle.olabels)


def test_lattice_rescoring_matches_decoding_at_that_weight(toy_lexicon, toy_arpa) -> None:
    tree = SyntheticTree(context_classes=3)
    graph = compile_hclg(tree, toy_lexicon, toy_arpa)
    rng = np.random.default_rng(2)
    loglik = rng.normal(-5.0, 2.0, size=(60, tree.num_senones)).astype(np.float32)
    wide = dict(beam=1e4, max_active=100_000, lattice_beam=1e4)
    lattice_decoder = Decoder(graph, DecoderConfig(acoustic_scale=0.1, **wide))
    lattice = lattice_decoder.lattice(loglik)
    for lm_weight in (2.0, 10.0):
        rescored = lattice_best_path(lattice, lm_weight, graph.words)
        direct = Decoder(graph, DecoderConfig(acoustic_scale=1.0 / lm_weight, **wide)).best_path(loglik)
        assert rescored.words == direct.words
        assert rescored.cost == pytest.approx(direct.cost * lm_weight, rel=1e-4)
