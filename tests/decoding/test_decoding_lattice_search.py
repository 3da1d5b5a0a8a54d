"""The lattice search (Kaldi LatticeFasterDecoder semantics) against kaldi-decoder's FasterDecoder and
LatticeSimpleDecoder, on the toy HCLG and on random graphs; the HCLG arrays and their cache."""

from __future__ import annotations

import os

import kaldifst
import numpy as np
import pytest
from decoding_fixtures import (
    TOY_ARPA,
    TOY_PRONS,
    SyntheticTree,
    crafted_loglik,
    lattice_simple_decoder,
    utterance_senones,
)

from asr_kd.data.lexicon import Lexicon
from asr_kd.decoding.decoder import Decoder, DecoderConfig, SearchLattice, lattice_best_path
from asr_kd.decoding.fst_arrays import FstArrays, arrays_to_fst, fst_to_arrays
from asr_kd.decoding.hclg import DecodingGraph, compile_hclg
from asr_kd.decoding.lattice import lattice_best_path as raw_best_path
from asr_kd.decoding.lattice import raw_lattice
from asr_kd.decoding.lattice_search import LatticeSearch, SearchOptions
from asr_kd.decoding.nbest import ScoringSetting, best_hypothesis
from asr_kd.decoding.search_graph import CACHE_DIR, from_fst_arrays, load_search_graph, read_fst_file
from asr_kd.utils.errors import AsrKdError

SCALE = 0.1
WIDE = dict(beam=1e4, max_active=10**6, min_active=0)


@pytest.fixture(scope="module")
def toy_graph(tmp_path_factory) -> DecodingGraph:
    arpa = tmp_path_factory.mktemp("lm") / "toy.arpa"
    arpa.write_text(TOY_ARPA)
    return compile_hclg(SyntheticTree(context_classes=3), Lexicon({w: list(p) for w, p in TOY_PRONS.items()}), arpa)


def random_graph(seed: int, num_states: int = 40, num_senones: int = 12, num_words: int = 6,
                 eps_cycle: float | None = None) -> DecodingGraph:
    """A random HCLG-like graph: 1-3 emitting arcs per state, epsilon arcs forward (some with words).

    ``eps_cycle``: add an epsilon cycle 1 -> 2 -> 1 whose two arcs cost this much each.
    """
    rng = np.random.default_rng(seed)
    arcs = []
    for s in range(num_states):
        for _ in range(rng.integers(1, 4)):
            arcs.append((s, rng.integers(num_states), rng.integers(1, num_senones + 1), 0, rng.uniform(0, 2)))
        if s + 1 < num_states and rng.random() < 0.4:
            word = rng.integers(1, num_words + 1) if rng.random() < 0.7 else 0
            arcs.append((s, rng.integers(s + 1, num_states), 0, word, rng.uniform(-0.5, 2)))
    if eps_cycle is not None:
        arcs += [(1, 2, 0, 0, eps_cycle), (2, 1, 0, 0, eps_cycle)]
    a = np.array(arcs, dtype=np.float64)
    final = np.where(rng.random(num_states) < 0.3, rng.uniform(0, 3, num_states), np.inf)
    final[-1] = 0.5
    fst = arrays_to_fst(FstArrays(0, num_states, a[:, 0].astype(np.int32), a[:, 1].astype(np.int32),
                                  a[:, 2].astype(np.int32), a[:, 3].astype(np.int32), a[:, 4].astype(np.float32),
                                  final.astype(np.float32)))
    kaldifst.arcsort(fst, sort_type="ilabel")
    words = ("<eps>", *(f"W{i}" for i in range(1, num_words + 1)))
    return DecodingGraph(words=words, num_senones=num_senones, fst=fst)


def noise(num_frames: int, num_senones: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(-5.0, 2.0, size=(num_frames, num_senones)).astype(np.float32)


def arc_table(lat) -> np.ndarray:
    """``(5, A)`` frame, ilabel, olabel, graph and acoustic cost of the arcs, sorted: equal up to state numbering."""
    frame = lat.state_frame[lat.src]
    order = np.lexsort((lat.acoustic, lat.graph, lat.olabel, lat.ilabel, frame))
    return np.stack([frame[order], lat.ilabel[order], lat.olabel[order], lat.graph[order], lat.acoustic[order]])


def best_of_lattice(decoder: Decoder, loglik: np.ndarray):
    lattice = decoder.lattice(loglik)
    return lattice, lattice_best_path(lattice, 1.0 / SCALE, decoder.graph.words)


@pytest.mark.parametrize("settings", [dict(beam=13.0, max_active=7000, min_active=200), WIDE],
                         ids=["beam13", "wide"])
def test_best_path_is_faster_decoders_on_the_toy_graph(toy_graph, settings) -> None:
    faster = Decoder(toy_graph, DecoderConfig(acoustic_scale=SCALE, lattice_beam=6.0, **settings))
    for seed in range(4):
        loglik = noise(50 + 10 * seed, toy_graph.num_senones, seed)
        expected = faster.best_path(loglik)
        lattice, got = best_of_lattice(faster, loglik)
        assert got.words == expected.words
        # both costs are (graph + scaled acoustic); lattice_best_path's is divided by the scale
        assert got.cost * SCALE == pytest.approx(expected.cost, abs=1e-4)
        assert lattice.reached_final == expected.reached_final


@pytest.mark.parametrize("seed", range(6))
def test_best_path_is_faster_decoders_on_random_graphs(seed) -> None:
    graph = random_graph(seed)
    decoder = Decoder(graph, DecoderConfig(acoustic_scale=SCALE, lattice_beam=5.0, beam=12.0, max_active=10**6,
                                           min_active=0))
    loglik = noise(40, graph.num_senones, seed)
    expected = decoder.best_path(loglik)
    _, got = best_of_lattice(decoder, loglik)
    assert got.words == expected.words
    assert got.cost * SCALE == pytest.approx(expected.cost, abs=1e-4)


def test_wide_lattices_equal_lattice_simple_decoders(toy_graph) -> None:
    """Same lattice (states, arcs, costs), hence the same N-best lists and LMWT-rescored best paths."""
    loglik = noise(60, toy_graph.num_senones, 2)
    decoder = Decoder(toy_graph, DecoderConfig(acoustic_scale=SCALE, lattice_beam=5.0, nbest_beam=5.0, **WIDE))
    ours = decoder.lattice(loglik)
    reference = lattice_simple_decoder(toy_graph, loglik * SCALE, beam=1e4, lattice_beam=5.0)
    assert (ours.lattice.num_states, ours.lattice.num_arcs) == (reference.num_states, reference.num_arcs)
    assert np.allclose(arc_table(ours.lattice), arc_table(reference), atol=1e-5)

    ref = SearchLattice(reference, SCALE)
    ours_nbest, ref_nbest = decoder.nbest(ours, 50), decoder.nbest(ref, 50)
    assert [h.words for h in ours_nbest] == [h.words for h in ref_nbest] and len(ours_nbest) > 5
    for a, b in zip(ours_nbest, ref_nbest):
        assert (a.graph_cost, a.acoustic_cost) == pytest.approx((b.graph_cost, b.acoustic_cost), abs=1e-3)
    for lm_weight in (4.0, 10.0, 20.0):
        exact = lattice_best_path(ref, lm_weight, toy_graph.words)
        assert lattice_best_path(ours, lm_weight, toy_graph.words).words == exact.words
        assert best_hypothesis(ours_nbest + decoder.nbest(ours, 1, coverage=[ScoringSetting(lm_weight)]),
                               ScoringSetting(lm_weight), 1.0).words == exact.words


def test_periodic_pruning_keeps_the_final_lattice_and_bounds_memory(toy_graph) -> None:
    """A 16 s utterance: pruning every 25 (or 5) frames ends in the lattice of pruning once at the end."""
    tree = SyntheticTree(context_classes=3)
    words = ["THE", "CAT", "SAT", "ON", "THE", "MAT"] * 12
    phones = ["SIL", *(p for w in words for p in TOY_PRONS[w][0]), "SIL"]
    loglik = crafted_loglik(tree.num_senones, utterance_senones(tree, phones), low=-4.0, seed=1) * SCALE
    lattices, stats = {}, {}
    for interval in (5, 25, 10**9):
        search = LatticeSearch(from_fst_arrays(fst_to_arrays(toy_graph.fst)),
                               SearchOptions(beam=14.0, max_active=7000, lattice_beam=6.0, prune_interval=interval))
        status, lattices[interval] = search(loglik)
        assert status == 0
        stats[interval] = search.last_stats
    for interval in (5, 25):
        for field in ("src", "dst", "ilabel", "olabel", "graph", "acoustic", "final_graph"):
            assert np.array_equal(getattr(lattices[interval], field), getattr(lattices[10**9], field)), field
    # memory follows the lattice: tables are compacted, far below what the search made
    assert stats[25]["compactions"] > 0
    assert stats[25]["max_links_held"] < stats[25]["links_created"] / 5
    assert stats[10**9]["max_links_held"] == stats[10**9]["links_created"]


def test_max_active_bounds_the_search(toy_graph) -> None:
    loglik = noise(100, toy_graph.num_senones, 3)
    created = {}
    for max_active in (10**6, 30):
        decoder = Decoder(toy_graph, DecoderConfig(acoustic_scale=SCALE, beam=1e4, max_active=max_active,
                                                   min_active=0, lattice_beam=4.0))
        decoder.lattice(loglik)
        created[max_active] = decoder.last_search_stats["tokens_created"]
    assert created[30] < created[10**6] / 3


def test_positive_epsilon_cycle_is_searched_and_kept_in_the_lattice() -> None:
    graph = random_graph(11, eps_cycle=0.3)
    decoder = Decoder(graph, DecoderConfig(acoustic_scale=SCALE, lattice_beam=8.0, nbest_beam=3.0, **WIDE))
    loglik = noise(30, graph.num_senones, 11)
    expected = decoder.best_path(loglik)
    lattice, got = best_of_lattice(decoder, loglik)
    assert got.words == expected.words and got.cost * SCALE == pytest.approx(expected.cost, abs=1e-4)
    assert not lattice.lattice.acyclic  # some frame holds both states of the cycle
    hyps = decoder.nbest(lattice, 20)
    assert hyps[0].words == got.words


def test_negative_epsilon_cycle_is_a_clear_error() -> None:
    graph = random_graph(11, eps_cycle=-0.3)
    with pytest.raises(AsrKdError, match="negative-cost epsilon cycle"):
        Decoder(graph, DecoderConfig(acoustic_scale=SCALE, **WIDE)).lattice(noise(5, graph.num_senones, 0))


def test_raw_lattice_order_and_a_non_lattice() -> None:
    # 0 -eps-> 2 -a-> 1 ; 0 -b-> 1: state 2 is in frame 0 after 0, state 1 in frame 1
    lat = raw_lattice(0, 3, np.array([0, 2, 0]), np.array([2, 1, 1]), np.array([0, 5, 6]), np.array([0, 0, 3]),
                      np.array([1.0, 2.0, 3.6]), np.array([0.0, 0.5, 0.25]), np.array([np.inf, 1.0, np.inf]),
                      np.zeros(3), True)
    assert list(lat.state_frame) == [0, 0, 1] and lat.num_frames == 1 and lat.acyclic
    assert list(lat.arc_start) == [0, 2, 3, 3]
    best = raw_best_path(lat)  # via the epsilon arc: 1 + 2.5 + final 1 = 4.5; direct: 3.6 + 0.25 + 1 = 4.85
    assert best.word_ids == () and (best.graph, best.acoustic) == pytest.approx((4.0, 0.5))
    best = raw_best_path(lat, acoustic_scale=10.0)  # 4 + 5 against 4.6 + 2.5
    assert best.word_ids == (3,) and (best.graph, best.acoustic) == pytest.approx((4.6, 0.25))
    with pytest.raises(AsrKdError, match="different numbers of frames"):
        raw_lattice(0, 2, np.array([0, 0]), np.array([1, 1]), np.array([0, 4]), np.zeros(2), np.zeros(2), np.zeros(2),
                    np.zeros(2), np.zeros(2), True)


def test_search_graph_from_vector_and_const_files_and_its_cache(toy_graph, tmp_path) -> None:
    expected = from_fst_arrays(fst_to_arrays(toy_graph.fst))
    toy_graph.fst.write(str(tmp_path / "vector.fst"))
    kaldifst.StdConstFst(toy_graph.fst).write(str(tmp_path / "const.fst"))
    for name in ("vector.fst", "const.fst"):
        got = read_fst_file(tmp_path / name)
        assert got.start == expected.start
        for field in ("offsets", "arcs", "final"):
            assert np.array_equal(getattr(got, field), getattr(expected, field)), (name, field)
    # per state: emitting arcs, then epsilon arcs
    o, ilabel = expected.offsets, expected.arcs["ilabel"]
    s = np.arange(expected.num_states)
    emitting = np.zeros(expected.num_arcs, dtype=bool)
    for state in s:
        emitting[o[2 * state] : o[2 * state + 1]] = True
    assert np.array_equal(emitting, ilabel != 0)

    graph_dir = tmp_path / "graph"
    graph_dir.mkdir()
    os.replace(tmp_path / "vector.fst", graph_dir / "HCLG.fst")
    first = load_search_graph(graph_dir, {"k": 1})
    assert isinstance(first.arcs, np.memmap) and np.array_equal(first.arcs, expected.arcs)
    stamp = (graph_dir / CACHE_DIR / "arcs.npy").stat().st_mtime_ns
    load_search_graph(graph_dir, {"k": 1})
    assert (graph_dir / CACHE_DIR / "arcs.npy").stat().st_mtime_ns == stamp  # reused
    load_search_graph(graph_dir, {"k": 2})
    assert (graph_dir / CACHE_DIR / "arcs.npy").stat().st_mtime_ns != stamp  # another graph key: rebuilt
    (graph_dir / "HCLG.fst").write_bytes(b"\x00" * 8)
    with pytest.raises(AsrKdError, match="not an OpenFst file"):
        load_search_graph(graph_dir, {"k": 2})  # the file changed: the cache is not trusted
