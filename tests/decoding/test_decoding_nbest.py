"""N-best lists from raw lattices: exact against the raw lattice's own best paths, costs kept apart."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
from decoding_fixtures import SyntheticTree

from asr_kd.decoding.decoder import Decoder, DecoderConfig, NoPathError, lattice_best_path
from asr_kd.decoding.hclg import compile_hclg
from asr_kd.decoding.lattice import lattice_best_path as lattice_path
from asr_kd.decoding.nbest import Hypothesis, NBestLists, ScoringSetting, best_hypothesis, read_nbest, write_nbest
from asr_kd.decoding.store_decoding import decode_store
from asr_kd.utils.array_store import ArrayStoreWriter
from asr_kd.utils.errors import AsrKdError

ACOUSTIC_SCALE = 0.1


@pytest.fixture(scope="module")
def lattice_setup(tmp_path_factory):
    """A triphone toy graph, a noisy utterance (many competing paths) and its wide lattice."""
    from decoding_fixtures import TOY_ARPA, TOY_PRONS

    from asr_kd.data.lexicon import Lexicon

    arpa = tmp_path_factory.mktemp("lm") / "toy.arpa"
    arpa.write_text(TOY_ARPA)
    tree = SyntheticTree(context_classes=3)
    graph = compile_hclg(tree, Lexicon({w: list(p) for w, p in TOY_PRONS.items()}), arpa)
    rng = np.random.default_rng(2)
    loglik = rng.normal(-5.0, 2.0, size=(60, tree.num_senones)).astype(np.float32)
    decoder = Decoder(graph, DecoderConfig(acoustic_scale=ACOUSTIC_SCALE, lattice_beam=5.0, nbest_beam=5.0))
    return graph, tree, loglik, decoder, decoder.lattice(loglik)


def test_nbest_best_paths_match_the_raw_lattice_at_every_lm_weight(lattice_setup) -> None:
    graph, _, _, decoder, lattice = lattice_setup
    hyps = decoder.nbest(lattice, 100)
    assert len(hyps) > 5
    assert len({h.words for h in hyps}) == len(hyps)  # distinct word sequences
    for lm_weight in (4.0, 7.0, 10.0, 14.0, 20.0):
        exact = lattice_best_path(lattice, lm_weight, graph.words)
        best = best_hypothesis(hyps, ScoringSetting(lm_weight, 0.0, 1.0), 1.0)
        assert best.words == exact.words
        # lattice_best_path's cost is lm_weight * graph + acoustic (unscaled)
        assert lm_weight * best.graph_cost + best.acoustic_cost == pytest.approx(exact.cost, abs=1e-2)


def test_top_hypothesis_keeps_the_split_and_prior_sum_of_the_best_raw_path(lattice_setup) -> None:
    graph, tree, _, decoder, lattice = lattice_setup
    log_priors = np.log(np.random.default_rng(3).dirichlet(np.ones(tree.num_senones)))
    top = decoder.nbest(lattice, 5, log_priors)[0]
    best = lattice_path(lattice.lattice)
    assert top.words == tuple(graph.words[w] for w in best.word_ids)
    assert top.graph_cost == pytest.approx(best.graph, abs=1e-3)
    assert top.acoustic_cost == pytest.approx(best.acoustic / ACOUSTIC_SCALE, abs=1e-2)
    senones_plus_one = lattice.lattice.ilabel[best.arcs]
    expected_prior = sum(log_priors[s - 1] for s in senones_plus_one if s > 0)
    assert top.log_prior_sum == pytest.approx(expected_prior, abs=1e-3)


def test_prior_scale_and_penalty_change_the_ranking_as_the_formula_says() -> None:
    long = Hypothesis(("A", "B", "C"), graph_cost=10.0, acoustic_cost=100.0, log_prior_sum=-50.0)
    short = Hypothesis(("A",), graph_cost=8.0, acoustic_cost=125.0, log_prior_sum=-10.0)
    # lmwt 10: 10 + 10 = 20 vs 8 + 12.5 = 20.5 -> long; with WIP 0.5: 21.5 vs 21.0 -> short
    assert best_hypothesis([long, short], ScoringSetting(10.0, 0.0, 1.0), 1.0) is long
    assert best_hypothesis([long, short], ScoringSetting(10.0, 0.5, 1.0), 1.0) is short
    # prior scale 0.5 instead of 1: acoustic += -0.5 * prior sum -> 10 + 12.5 = 22.5 vs 8 + 13 = 21 -> short
    assert best_hypothesis([long, short], ScoringSetting(10.0, 0.0, 0.5), 1.0) is short


def test_nbest_file_round_trip_and_errors(tmp_path) -> None:
    lists = NBestLists({"acoustic_scale": 0.1, "prior_scale": 1.0},
                       {"u1": [Hypothesis(("A", "B"), 1.5, 20.25, -3.0), Hypothesis((), 2.0, 30.0, 0.0)], "u2": []})
    write_nbest(tmp_path / "nb.jsonl.gz", lists)
    back = read_nbest(tmp_path / "nb.jsonl.gz")
    assert back.utterances == lists.utterances and back.header == lists.header
    assert back.best(back.search_setting()) == {"u1": "A B", "u2": ""}
    with gzip.open(tmp_path / "bad.jsonl.gz", "wt") as f:
        f.write('{"format": "asr_kd-nbest-1", "acoustic_scale": 0.1, "prior_scale": 1}\n{"utt": "u1"}\n')
    with pytest.raises(AsrKdError, match="bad.jsonl.gz:2: malformed"):
        read_nbest(tmp_path / "bad.jsonl.gz")
    (tmp_path / "plain.txt").write_text("u1 A B\n")
    with pytest.raises(AsrKdError, match="cannot read N-best file|not an asr_kd N-best file"):
        read_nbest(tmp_path / "plain.txt")


def test_no_path_is_a_typed_error_and_counts_as_a_failed_utterance(lattice_setup, tmp_path) -> None:
    graph, tree, loglik, decoder, _ = lattice_setup
    with pytest.raises(NoPathError, match="no frames"):
        decoder.lattice(loglik[:0], "empty")
    ArrayStoreWriter(tmp_path / "scores", np.float32, (tree.num_senones,)).write_shard(
        0, [("good", loglik[:30]), ("empty", loglik[:0])])
    summary = decode_store(graph, tmp_path / "scores", tmp_path / "out", decoder.config, kind="log-likelihoods",
                           nbest=10)
    assert summary["failed"] == 1 and "empty" in summary["failures"]
    assert set(read_nbest(tmp_path / "out" / "nbest.jsonl.gz").utterances) == {"good"}
    assert math.isfinite(summary["nbest_rtf"])


def test_coverage_adds_the_word_graph_best_path_of_every_grid_setting(lattice_setup) -> None:
    graph, _, _, decoder, lattice = lattice_setup
    grid = [ScoringSetting(w, p, 1.0) for w in (2.0, 30.0) for p in (0.0, 3.0)]
    plain = decoder.nbest(lattice, 3)
    covered = decoder.nbest(lattice, 3, coverage=grid)
    assert covered[:3] == plain and len(covered) > 3
    for setting in grid:
        # the exact raw-lattice best path at (LMWT, no penalty) is now among the hypotheses
        if setting.word_ins_penalty == 0.0:
            exact = lattice_best_path(lattice, setting.lm_weight, graph.words)
            assert best_hypothesis(covered, setting, 1.0).words == exact.words
    # a penalty of 3 per word favours shorter hypotheses than no penalty
    lengths = [len(best_hypothesis(covered, ScoringSetting(2.0, p, 1.0), 1.0).words) for p in (0.0, 3.0)]
    assert lengths[1] <= lengths[0]
