"""Viterbi beam search over HCLG on a log-likelihood matrix: best paths and lattices.

Hybrid scoring: ``loglik = log_softmax(logits) - prior_scale * log_prior`` (scaled likelihoods,
:func:`scaled_log_likelihoods`). The graph's input label ``senone + 1`` scores ``M[t, senone]``
with ``M = acoustic_scale * loglik`` (as ``kaldi_decoder.DecodableCtc`` does).

Two searches, both with Kaldi's beam, max-active and min-active:

* :meth:`Decoder.best_path`: kaldi-decoder's ``FasterDecoder``, one hypothesis (the fastest way
  to a best path: no lattice bookkeeping).
* :meth:`Decoder.lattice`: our ``LatticeFasterDecoder`` (:mod:`asr_kd.decoding.lattice_search`)
  keeps a raw lattice whose arcs hold (graph cost, acoustic cost) separately; :meth:`Decoder.nbest`
  turns it into an N-best list with those costs apart (:mod:`asr_kd.decoding.lattice`), so LM
  weight, insertion penalty and prior scale are swept and LMs rescored afterwards without
  searching again (Kaldi's LMWT scoring, ``lmrescore.sh``). :func:`lattice_best_path` is the
  exact best path of a raw lattice at one LM weight (the reference the N-best sweep is checked
  against).

A search that finds no path raises :class:`NoPathError` (an :class:`AsrKdError`), which
:func:`asr_kd.decoding.store_decoding.decode_store` counts as a failed utterance instead of stopping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import kaldi_decoder
import kaldifst
import numpy as np

from asr_kd.decoding import lattice_search
from asr_kd.decoding.hclg import DecodingGraph
from asr_kd.decoding.lattice import NoPathError, RawLattice, cheapest_path, nbest, prune_word_graph, word_graph
from asr_kd.decoding.lattice import lattice_best_path as raw_best_path
from asr_kd.decoding.nbest import Hypothesis, ScoringSetting, setting_cost
from asr_kd.utils.errors import AsrKdError


@dataclass(frozen=True)
class DecoderConfig:
    """Search settings (Kaldi's defaults for hybrid DNN decoding).

    Attributes:
        acoustic_scale: multiplies log-likelihoods before search (LM weight = 1 / acoustic_scale).
        beam: pruning beam, in graph-cost units.
        max_active, min_active: bounds on active states per frame.
        lattice_beam: lattice pruning beam (lattice search only).
        nbest_beam: N-best lists keep word sequences within this cost of the best one.
        prune_interval: frames between two lattice pruning passes (lattice search only).
        beam_delta: widening of the beam when max/min-active set the cutoff (Kaldi's 0.5).
    """

    acoustic_scale: float = 0.1
    beam: float = 13.0
    max_active: int = 7000
    min_active: int = 200
    lattice_beam: float = 8.0
    nbest_beam: float = 8.0
    prune_interval: int = 25
    beam_delta: float = 0.5

    def search_options(self) -> lattice_search.SearchOptions:
        return lattice_search.SearchOptions(beam=self.beam, max_active=self.max_active, min_active=self.min_active,
                                            lattice_beam=self.lattice_beam, prune_interval=self.prune_interval,
                                            beam_delta=self.beam_delta)




@dataclass(frozen=True)
class SearchLattice:
    """A raw state-level lattice: arc weights are (graph cost, ``acoustic_scale`` * acoustic cost)."""

    lattice: RawLattice
    acoustic_scale: float

    @property
    def reached_final(self) -> bool:
        return self.lattice.reached_final

    @property
    def num_frames(self) -> int:
        return self.lattice.num_frames


@dataclass(frozen=True)
class BestPath:
    """A decoded word sequence and its total cost (graph cost + scaled acoustic cost)."""

    words: tuple[str, ...]
    cost: float
    reached_final: bool


def scaled_log_likelihoods(
    log_posteriors: np.ndarray, log_priors: np.ndarray | None, prior_scale: float = 1.0
) -> np.ndarray:
    """Hybrid pseudo log-likelihoods ``log p(s|x) - prior_scale * log p(s)``.

    Args:
        log_posteriors: ``(T, num_senones)`` frame log-posteriors (log_softmax of the logits).
        log_priors: ``(num_senones,)`` log senone priors, or ``None`` to use posteriors as they are.
        prior_scale: weight of the prior division.

    Returns:
        ``(T, num_senones)`` float32.
    """
    out = np.asarray(log_posteriors, dtype=np.float32)
    if log_priors is None:
        return out
    log_priors = np.asarray(log_priors, dtype=np.float32)
    if log_priors.shape != (out.shape[1],):
        raise AsrKdError(f"senone priors have shape {log_priors.shape}, log-posteriors have {out.shape[1]} columns")
    return out - np.float32(prior_scale) * log_priors


class Decoder:
    """Decodes log-likelihood matrices against one :class:`DecodingGraph` (each search made on first use)."""

    def __init__(self, graph: DecodingGraph, config: DecoderConfig = DecoderConfig()) -> None:
        self.graph = graph
        self.config = config
        self._faster: kaldi_decoder.FasterDecoder | None = None
        self._lattice_search: lattice_search.LatticeSearch | None = None

    def prepare(self, lattice: bool) -> None:
        """Load the graph and make the search now (and, for ``lattice``, load the compiled numba code by
        searching one silent frame), so that the first utterance's time is its search alone."""
        if not lattice:
            self._faster_decoder()
            return
        with contextlib.suppress(NoPathError):  # a graph without a one-frame path: warm enough
            self.nbest(self.lattice(np.zeros((1, self.graph.num_senones), dtype=np.float32), "<warm-up>"), 1)

    def _faster_decoder(self) -> kaldi_decoder.FasterDecoder:
        if self._faster is None:
            options = kaldi_decoder.FasterDecoderOptions()
            options.beam = self.config.beam
            options.max_active = self.config.max_active
            options.min_active = self.config.min_active
            options.beam_delta = self.config.beam_delta
            self._faster = kaldi_decoder.FasterDecoder(self.graph.fst, options)
        return self._faster

    def _scaled(self, loglik: np.ndarray, utt_id: str) -> np.ndarray:
        """``acoustic_scale * loglik`` as contiguous float32, after checking shape and values."""
        loglik = np.asarray(loglik)
        if loglik.ndim != 2 or loglik.shape[1] != self.graph.num_senones:
            raise AsrKdError(
                f"{utt_id}: log-likelihoods have shape {loglik.shape}, the graph expects "
                f"(T, {self.graph.num_senones}) (one column per senone of the tree)"
            )
        if not np.all(np.isfinite(loglik)):
            raise AsrKdError(f"{utt_id}: log-likelihoods contain NaN or infinite values")
        return np.ascontiguousarray(loglik * self.config.acoustic_scale, dtype=np.float32)

    def best_path(self, loglik: np.ndarray, utt_id: str = "<utt>") -> BestPath:
        """Best word sequence for ``loglik`` ``(T, num_senones)`` (unscaled log-likelihoods)."""
        faster = self._faster_decoder()
        faster.decode(kaldi_decoder.DecodableCtc(self._scaled(loglik, utt_id)))
        reached = faster.reached_final()
        ok, path = faster.get_best_path()
        if not ok:
            raise NoPathError(f"{utt_id}: search found no path through the graph (beam too small?)")
        return _linear_hypothesis(path, self.graph.words, reached)

    def lattice(self, loglik: np.ndarray, utt_id: str = "<utt>") -> SearchLattice:
        """Raw state-level lattice of ``loglik`` ``(T, num_senones)`` (see :class:`SearchLattice`)."""
        if len(loglik) == 0:
            raise NoPathError(f"{utt_id}: no frames to decode")
        scaled = self._scaled(loglik, utt_id)
        if self._lattice_search is None:
            search_graph = self.graph.search_graph
            top = int(search_graph.arcs["ilabel"].max(initial=0))
            if top > self.graph.num_senones:
                raise AsrKdError(f"graph input label {top} is beyond the tree's {self.graph.num_senones} senones")
            self._lattice_search = lattice_search.LatticeSearch(search_graph, self.config.search_options())
        status, lattice = self._lattice_search(scaled)
        if status == lattice_search.EPSILON_LOOP:
            raise AsrKdError(f"{utt_id}: the graph has a negative-cost epsilon cycle: the search cannot settle")
        if lattice is None:
            raise NoPathError(f"{utt_id}: lattice search found no path through the graph (beam too small?)")
        return SearchLattice(lattice, self.config.acoustic_scale)

    @property
    def last_search_stats(self) -> dict[str, int]:
        """Counters of the last lattice search (tokens and links made and held, pruning passes)."""
        return {} if self._lattice_search is None else dict(self._lattice_search.last_stats)

    def nbest(
        self,
        lattice: SearchLattice,
        n: int,
        log_priors: np.ndarray | None = None,
        utt_id: str = "<utt>",
        coverage: Sequence[ScoringSetting] = (),
        decode_prior_scale: float = 1.0,
    ) -> list[Hypothesis]:
        """The ``n`` best distinct word sequences of ``lattice`` within ``config.nbest_beam``, best first,
        then the word graph's best path under each setting of ``coverage`` (see :mod:`asr_kd.decoding.nbest`).

        Args:
            log_priors: ``(num_senones,)`` log priors the log-likelihoods were divided by, so that
                each hypothesis carries its prior sum (for prior-scale sweeps); ``None``: zeros.
            decode_prior_scale: the prior scale the log-likelihoods were computed with.
        """
        try:
            graph = word_graph(lattice.lattice, log_priors, self.config.nbest_beam)
        except NoPathError as err:
            raise NoPathError(f"{utt_id}: {err}") from None
        graph = prune_word_graph(graph, self.config.nbest_beam)
        scale = lattice.acoustic_scale
        paths = nbest(graph, n, self.config.nbest_beam)
        for setting in coverage:
            paths.append(cheapest_path(graph, *(
                setting_cost(g, a / scale, p, words, setting, decode_prior_scale)
                for g, a, p, words in ((graph.graph, graph.acoustic, graph.prior, 1),
                                       (graph.final_graph, graph.final_acoustic, graph.final_prior, 0)))))
        seen, out = set(), []
        for p in paths:
            if p not in seen:
                seen.add(p)
                out.append(Hypothesis(tuple(self.graph.words[w] for w in p.word_ids), p.graph, p.acoustic / scale,
                                      p.prior))
        return out


def _linear_hypothesis(path: kaldifst.Lattice, words: Sequence[str], reached_final: bool) -> BestPath:
    ok, _, olabels, weight = kaldifst.get_linear_symbol_sequence(path)
    if not ok:
        raise AsrKdError("best path is not linear (internal error)")
    return BestPath(tuple(words[w] for w in olabels), float(weight.value1 + weight.value2), reached_final)


def lattice_best_path(lattice: SearchLattice, lm_weight: float, words: Sequence[str]) -> BestPath:
    """Best path of a raw lattice rescored with ``lm_weight`` (Kaldi's LMWT scoring).

    The lattice's acoustic costs were scaled by ``lattice.acoustic_scale`` during search; the
    rescored cost is ``lm_weight * graph_cost + acoustic_cost / acoustic_scale``.
    """
    path = raw_best_path(lattice.lattice, lm_weight, 1.0 / lattice.acoustic_scale)  # NoPathError: none complete
    cost = lm_weight * path.graph + path.acoustic / lattice.acoustic_scale
    return BestPath(tuple(words[w] for w in path.word_ids), cost, lattice.reached_final)
