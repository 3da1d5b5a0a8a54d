"""HCLG: compose H o C o L o G, determinize and minimize, add self-loops; cached on disk.

The recipe is Kaldi's ``mkgraph.sh``: LG = min(det(L o G)); CLG via ``compose_context``
(triphone windows); HCLG = min(rmdisambig(det(H o CLG))) with log-semiring determinization,
then self-loops and relabelling of input labels to ``senone + 1`` (see :mod:`hmm_fst`).

A graph directory holds::

    HCLG.fst       the decoding graph (OpenFst binary, ilabel-sorted)
    words.txt      output symbol table (``word id``)
    graph.json     cache key (hashes of tree, lexicon, LM and build options), sizes, timings
    search_graph/  HCLG as arrays for the lattice search, made on first use (:mod:`search_graph`)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import kaldifst

from asr_kd.data.lexicon import Lexicon, read_lexicon
from asr_kd.decoding.fst_arrays import arrays_to_fst, fst_to_arrays
from asr_kd.decoding.grammar import make_grammar_fst
from asr_kd.decoding.hmm_fst import SenoneTreeLike, add_self_loops, make_h_fst, transition_ids_to_senones
from asr_kd.decoding.lexicon_fst import make_lexicon_fst, word_table_text
from asr_kd.decoding.search_graph import SearchGraph, from_fst_arrays, load_search_graph
from asr_kd.utils.atomic import write_json, write_with
from asr_kd.utils.checksum import file_sha256
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("decoding.hclg")
#: Bump when the construction changes so that cached graphs are rebuilt.
GRAPH_VERSION = 2
HCLG_FILE = "HCLG.fst"
WORDS_FILE = "words.txt"
INFO_FILE = "graph.json"


@dataclass(frozen=True)
class GraphOptions:
    """Build options.

    Attributes:
        silence_prob: optional-silence probability between words (and at the start) in L.
        silence_phone: the phone of optional silence.
        self_loop_scale: Kaldi's ``--self-loop-scale``: HMM transition log-probabilities are scaled
            by it (0.1 for hybrid models decoded at acoustic scale 0.1, as in Kaldi's mkgraph.sh;
            1.0 keeps the model's probabilities).
        delta: weight quantization of determinization/minimization (OpenFst's kDelta): states
            whose residual weights differ by less are merged, so path costs may move by ~delta
            per merge; tests use a tiny delta to check exact path costs.
    """

    silence_prob: float = 0.5
    silence_phone: str = "SIL"
    self_loop_scale: float = 0.1
    delta: float = 1.0 / 1024


class DecodingGraph:
    """HCLG and what a decoder needs to interpret it.

    Attributes:
        words: word symbol table (``words[0] == "<eps>"``).
        num_senones: number of log-likelihood columns the graph expects.
        info: sizes, timings, LM report (free-form, saved in ``graph.json``).
        directory: the graph directory it was loaded from (``None``: built in memory).

    The two forms of the graph are made on first use: :attr:`fst` (kaldifst, ~2.5x the file
    size in memory, for ``FasterDecoder``) and :attr:`search_graph` (arrays for the lattice
    search, memory-mapped from the graph directory's cache, shared between processes).
    """

    def __init__(self, words: tuple[str, ...], num_senones: int, info: dict[str, Any] | None = None,
                 fst: kaldifst.StdVectorFst | None = None, directory: Path | None = None) -> None:
        if fst is None and directory is None:
            raise ValueError("a DecodingGraph needs an FST or a graph directory")
        self.words = words
        self.num_senones = num_senones
        self.info = info if info is not None else {}
        self.directory = directory
        self._fst = fst
        self._search_graph: SearchGraph | None = None

    @property
    def fst(self) -> kaldifst.StdVectorFst:
        """HCLG as a kaldifst ``StdVectorFst``; input labels are ``senone + 1``, output labels index ``words``."""
        if self._fst is None:
            self._fst = kaldifst.StdVectorFst.read(str(self.directory / HCLG_FILE))
        return self._fst

    @property
    def search_graph(self) -> SearchGraph:
        """HCLG as :class:`SearchGraph` arrays (cached in the graph directory when there is one)."""
        if self._search_graph is None:
            if self.directory is not None:
                self._search_graph = load_search_graph(self.directory, self.info.get("key"), HCLG_FILE)
            else:
                self._search_graph = from_fst_arrays(fst_to_arrays(self.fst))
        return self._search_graph


def _stage(name: str, timings: dict[str, float], t0: float) -> float:
    now = time.perf_counter()
    timings[name] = round(now - t0, 3)
    log.info("graph: %s done in %.1f s", name, now - t0)
    return now


def _remove_disambig(fst: kaldifst.StdVectorFst, first_disambig: int) -> kaldifst.StdVectorFst:
    """Kaldi's ``fstrmsymbols``: input labels ``>= first_disambig`` become epsilon (no binding exists)."""
    arrays = fst_to_arrays(fst)
    arrays.ilabel[arrays.ilabel >= first_disambig] = 0
    return arrays_to_fst(arrays)


def compile_hclg(
    tree: SenoneTreeLike, lexicon: Lexicon, arpa_path: str | os.PathLike, options: GraphOptions = GraphOptions()
) -> DecodingGraph:
    """Build HCLG for an acoustic model's ``tree``, a ``lexicon`` and an ARPA LM.

    Raises:
        AsrKdError: malformed ARPA, lexicon phones unknown to the tree, an empty graph.
    """
    timings: dict[str, float] = {}
    t = time.perf_counter()
    lang = make_lexicon_fst(lexicon, tree.phones, options.silence_phone, options.silence_prob)
    g, report = make_grammar_fst(arpa_path, lang.words)
    t = _stage("L+G", timings, t)

    kaldifst.arcsort(lang.fst, sort_type="olabel")
    lg = kaldifst.compose(lang.fst, g)
    kaldifst.determinize_star(lg, use_log=True, delta=options.delta)
    kaldifst.minimize_encoded(lg, delta=options.delta)
    t = _stage("LG", timings, t)
    if lg.num_states == 0:
        raise AsrKdError(f"{arpa_path}: L o G is empty: no LM word can be spelled with the lexicon")

    clg, ilabels = kaldifst.compose_context(list(lang.phone_disambig), 3, 1, lg)
    kaldifst.arcsort(clg, sort_type="ilabel")
    t = _stage("CLG", timings, t)

    h = make_h_fst(tree, ilabels, tree.phones, options.self_loop_scale)
    kaldifst.arcsort(h.fst, sort_type="olabel")
    hclg = kaldifst.compose(h.fst, clg)
    kaldifst.determinize_star(hclg, use_log=True, delta=options.delta)
    hclg = _remove_disambig(hclg, h.table.num_ids + 1)
    kaldifst.minimize_encoded(hclg, delta=options.delta)
    t = _stage("HCLG (no self-loops)", timings, t)

    arrays = transition_ids_to_senones(add_self_loops(fst_to_arrays(hclg), h.table.loop_cost), h.table.senone)
    hclg = arrays_to_fst(arrays)
    kaldifst.connect(hclg)
    kaldifst.arcsort(hclg, sort_type="ilabel")
    _stage("self-loops", timings, t)

    info = {
        "num_states": hclg.num_states,
        "num_arcs": int(sum(hclg.num_arcs(s) for s in range(hclg.num_states))),
        "num_context_labels": len(ilabels),
        "num_transition_ids": h.table.num_ids,
        "lm_ngram_counts": report.arpa.ngram_counts,
        "lm_words_missing_from_lexicon": len(report.missing_words),
        "lm_words_missing_examples": list(report.missing_words[:20]),
        "lm_normalisation": {k: report.normalisation[k] for k in ("ok", "max_abs_error", "tolerance")},
        "timings_s": timings,
    }
    return DecodingGraph(fst=hclg, words=lang.words, num_senones=tree.num_senones, info=info)


def graph_key(tree_path: Path, lexicon_path: Path, arpa_path: Path, options: GraphOptions) -> dict[str, Any]:
    """What a cached graph must match: input hashes, options and :data:`GRAPH_VERSION`."""
    return {
        "version": GRAPH_VERSION,
        "tree_sha256": file_sha256(tree_path),
        "lexicon_sha256": file_sha256(lexicon_path),
        "arpa_sha256": file_sha256(arpa_path),
        "options": asdict(options),
    }


def save_graph(graph: DecodingGraph, graph_dir: str | os.PathLike, key: dict[str, Any]) -> None:
    """Write ``graph`` atomically (``graph.json`` last, so it marks a complete graph)."""
    graph_dir = Path(graph_dir)
    graph_dir.mkdir(parents=True, exist_ok=True)
    write_with(graph_dir / HCLG_FILE, lambda tmp: graph.fst.write(str(tmp)))
    write_with(graph_dir / WORDS_FILE, lambda tmp: tmp.write_text(word_table_text(graph.words), encoding="utf-8"))
    write_json(graph_dir / INFO_FILE, {"key": key, "num_senones": graph.num_senones, **graph.info})


def load_graph(graph_dir: str | os.PathLike) -> DecodingGraph:
    """Read a graph directory written by :func:`save_graph`."""
    graph_dir = Path(graph_dir)
    info_path = graph_dir / INFO_FILE
    if not info_path.exists():
        raise AsrKdError(f"{graph_dir}: no decoding graph here (no {INFO_FILE}); run `asr-kd graph` first")
    info = json.loads(info_path.read_text())
    words = [line.split()[0] for line in (graph_dir / WORDS_FILE).read_text(encoding="utf-8").splitlines()]
    return DecodingGraph(words=tuple(words), num_senones=int(info["num_senones"]), info=info, directory=graph_dir)


def build_graph(
    tree: SenoneTreeLike,
    tree_path: str | os.PathLike,
    lexicon_path: str | os.PathLike,
    arpa_path: str | os.PathLike,
    graph_dir: str | os.PathLike,
    options: GraphOptions = GraphOptions(),
) -> tuple[Path, bool]:
    """Build HCLG into ``graph_dir`` unless a graph with the same inputs is already there.

    Args:
        tree: the senone tree loaded from ``tree_path`` (hashed for the cache key).

    Returns:
        ``(graph_dir, reused)``.
    """
    graph_dir = Path(graph_dir)
    key = graph_key(Path(tree_path), Path(lexicon_path), Path(arpa_path), options)
    info_path = graph_dir / INFO_FILE
    if info_path.exists() and json.loads(info_path.read_text()).get("key") == key:
        log.info("graph: %s is up to date (same tree, lexicon, LM and options)", graph_dir)
        return graph_dir, True
    if info_path.exists():
        info_path.unlink()  # the old graph no longer matches; never leave it looking complete
    graph = compile_hclg(tree, read_lexicon(lexicon_path), arpa_path, options)
    save_graph(graph, graph_dir, key)
    log.info("graph: wrote %s (%d states, %d arcs)", graph_dir, graph.info["num_states"], graph.info["num_arcs"])
    return graph_dir, False

