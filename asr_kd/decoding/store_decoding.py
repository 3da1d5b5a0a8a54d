"""Decode a whole array store of per-frame senone scores into hypothesis text files."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from asr_kd.decoding.decoder import Decoder, DecoderConfig, NoPathError, scaled_log_likelihoods
from asr_kd.decoding.hclg import DecodingGraph
from asr_kd.decoding.nbest import NBEST_FILE, Hypothesis, NBestLists, ScoringSetting, kaldi_grid, write_nbest
from asr_kd.scoring.wer import write_text
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.atomic import write_json
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger
from asr_kd.utils.processes import worker_pool

log = get_logger("decoding.store_decoding")
SCORE_KINDS = ("logits", "log-posteriors", "log-likelihoods")
FRAME_SHIFT_S = 0.01


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log_softmax`` of ``(T, C)`` logits, in float64 for stability."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def hmm_log_likelihoods(
    scores: np.ndarray, kind: str, log_priors: np.ndarray | None, prior_scale: float = 1.0
) -> np.ndarray:
    """``(T, num_senones)`` scores of ``kind`` (see :data:`SCORE_KINDS`) -> scaled log-likelihoods."""
    if kind not in SCORE_KINDS:
        raise AsrKdError(f"unknown score kind {kind!r}; expected one of {SCORE_KINDS}")
    if kind == "log-likelihoods":
        return np.asarray(scores, dtype=np.float32)
    if log_priors is None:
        raise AsrKdError(f"scores of kind {kind} need senone log-priors to become likelihoods")
    posteriors = log_softmax(scores) if kind == "logits" else scores
    return scaled_log_likelihoods(posteriors, log_priors, prior_scale)


@dataclass(frozen=True)
class _DecodeJob:
    """What decoding one utterance needs (shared by the workers of a parallel decode)."""

    graph: DecodingGraph
    config: DecoderConfig
    scores_dir: str
    kind: str
    log_priors: np.ndarray | None
    prior_scale: float
    nbest: int
    coverage: tuple[ScoringSetting, ...]


@dataclass
class _UttResult:
    """One decoded utterance: its words (and N-best list) or the reason it failed, and its costs in seconds."""

    utt_id: str
    frames: int
    wall_s: float
    cpu_s: float
    nbest_s: float = 0.0
    lattice_arcs: int = 0
    words: tuple[str, ...] = ()
    hyps: list[Hypothesis] | None = None
    reached_final: bool = True
    error: str | None = None


class _UttDecoder:
    """Decodes utterances of one job, one at a time (one per process)."""

    def __init__(self, job: _DecodeJob) -> None:
        self.job = job
        self.decoder = Decoder(job.graph, job.config)
        self.decoder.prepare(lattice=job.nbest > 0)  # start-up costs stay out of the per-utterance times
        self.store = ArrayStore(job.scores_dir)
        self.priors_for_nbest = job.log_priors if job.kind != "log-likelihoods" else None

    def __call__(self, utt_id: str) -> _UttResult:
        job = self.job
        loglik = hmm_log_likelihoods(self.store[utt_id], job.kind, job.log_priors, job.prior_scale)
        t0, c0 = time.perf_counter(), time.process_time()
        result = _UttResult(utt_id, len(loglik), 0.0, 0.0)
        try:
            if job.nbest:
                lattice = self.decoder.lattice(loglik, utt_id)
                result.lattice_arcs = lattice.lattice.num_arcs
                t1 = time.perf_counter()
                result.hyps = self.decoder.nbest(lattice, job.nbest, self.priors_for_nbest, utt_id, job.coverage,
                                                 job.prior_scale)
                result.nbest_s = time.perf_counter() - t1
                result.reached_final, result.words = lattice.reached_final, result.hyps[0].words
            else:
                best = self.decoder.best_path(loglik, utt_id)
                result.reached_final, result.words = best.reached_final, best.words
        except NoPathError as err:
            result.error = str(err)
        result.wall_s, result.cpu_s = time.perf_counter() - t0, time.process_time() - c0
        return result


_WORKER: _UttDecoder | None = None


def _init_worker(job: _DecodeJob) -> None:
    global _WORKER
    _WORKER = _UttDecoder(job)


def _decode_in_worker(utt_id: str) -> _UttResult:
    return _WORKER(utt_id)


def _decoded(job: _DecodeJob, utt_ids: Sequence[str], jobs: int) -> Iterator[_UttResult]:
    """Results in ``utt_ids`` order, from this process or from ``jobs`` forked workers.

    Workers are forked after the graph is loaded here, so they share its memory: the search
    graph is memory-mapped, and kaldifst's HCLG (best-path search) is shared copy-on-write.
    """
    if jobs <= 1 or len(utt_ids) <= 1:
        decode = _UttDecoder(job)
        yield from (decode(u) for u in utt_ids)
        return
    _ = job.graph.search_graph if job.nbest else job.graph.fst  # loaded once, before the fork (shared)
    with worker_pool(min(jobs, len(utt_ids)), "fork", initializer=_init_worker, initargs=(job,)) as pool:
        # small chunks keep the workers balanced (utterance lengths vary 10x) and the order is kept
        yield from pool.map(_decode_in_worker, utt_ids, chunksize=2)


def decode_store(
    graph: DecodingGraph,
    scores_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: DecoderConfig = DecoderConfig(),
    kind: str = "log-posteriors",
    log_priors: np.ndarray | None = None,
    prior_scale: float = 1.0,
    nbest: int = 0,
    utt_ids: Sequence[str] | None = None,
    coverage: Sequence[ScoringSetting] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Decode every utterance of ``scores_dir`` (an :class:`ArrayStore` of ``(T, num_senones)``).

    Writes ``out_dir/hyp.txt`` (best path at ``config.acoustic_scale``); with ``nbest > 0`` the
    search is a lattice search and ``out_dir/nbest.jsonl.gz`` gets the ``nbest`` best word
    sequences of each utterance with their graph, acoustic and prior costs apart
    (:mod:`asr_kd.decoding.nbest`; ``hyp.txt`` is then its first entry). ``decode.json`` holds
    the settings, failures and the real-time factors (search seconds per second of audio at 10 ms
    frames, summed over utterances: ``rtf`` wall clock, ``cpu_rtf`` CPU time of the process that
    decoded it, which is what one core costs when the machine is shared; with ``nbest`` also
    ``nbest_rtf``, the N-best extraction alone, included in ``rtf``, and the raw lattices' size,
    ``lattice_arcs_per_frame``; ``elapsed_s``: the whole decode, all workers together).

    ``utt_ids`` restricts the decode to those utterances (all of the store by default).
    ``coverage``: the settings whose best word-graph paths join each N-best list (default
    :func:`asr_kd.decoding.nbest.kaldi_grid` at ``prior_scale``; ``[]`` for none).
    ``jobs``: worker processes (utterances are spread over them; the outputs do not depend on it).

    Raises:
        AsrKdError: the store's column count differs from the graph's senone count; an
            utterance of ``utt_ids`` is not in the store.
    """
    start_time = time.perf_counter()
    store = ArrayStore(scores_dir)
    if utt_ids is None:
        utt_ids = list(store)
    missing = [u for u in utt_ids if u not in store]
    if missing:
        raise AsrKdError(f"{scores_dir}: {len(missing)} requested utterances are not in the store, e.g. {missing[:3]}")
    if store.trailing_shape != (graph.num_senones,):
        raise AsrKdError(
            f"{scores_dir}: rows have shape {store.trailing_shape}, the graph's tree has {graph.num_senones} "
            "senones: scores and graph come from different trees"
        )
    if kind != "log-likelihoods" and log_priors is None:
        raise AsrKdError(f"scores of kind {kind} need senone log-priors to become likelihoods")
    if coverage is None:
        coverage = kaldi_grid(prior_scale)
    job = _DecodeJob(graph, config, str(scores_dir), kind, log_priors, prior_scale, nbest, tuple(coverage))
    hyps: dict[str, str] = {}
    lists: dict[str, list[Hypothesis]] = {}
    failed: dict[str, str] = {}
    not_final: list[str] = []  # best path ended in a non-final state (the search ran out of beam)
    frames, search_s, search_cpu_s, nbest_s, lattice_arcs = 0, 0.0, 0.0, 0.0, 0
    for result in tqdm(_decoded(job, utt_ids, jobs), total=len(utt_ids), desc="decode", unit="utt", leave=False):
        frames += result.frames
        search_s += result.wall_s
        search_cpu_s += result.cpu_s
        nbest_s += result.nbest_s
        lattice_arcs += result.lattice_arcs
        if result.error is not None:
            failed[result.utt_id] = result.error
            log.warning("%s", result.error)
            continue
        if not result.reached_final:
            not_final.append(result.utt_id)
        hyps[result.utt_id] = " ".join(result.words)
        if nbest:
            lists[result.utt_id] = result.hyps
    out_dir = Path(out_dir)
    write_text(out_dir / "hyp.txt", hyps)
    audio_s = max(frames * FRAME_SHIFT_S, 1e-9)
    summary = {
        "graph_info": {k: graph.info.get(k) for k in ("num_states", "num_arcs", "key")},
        "scores": str(scores_dir),
        "kind": kind,
        "prior_scale": prior_scale,
        "config": asdict(config),
        "nbest": nbest,
        "utterances": len(utt_ids),
        "failed": len(failed),
        "failures": failed,
        "not_final": not_final,
        "frames": frames,
        "search_seconds": round(search_s, 3),
        "rtf": search_s / audio_s,
        "cpu_rtf": search_cpu_s / audio_s,
        "jobs": jobs,
        "elapsed_s": round(time.perf_counter() - start_time, 3),
        "hypothesis_files": [str(out_dir / "hyp.txt")],
    }
    if nbest:
        header = {"acoustic_scale": config.acoustic_scale, "prior_scale": prior_scale, "n": nbest,
                  "coverage": [c.as_dict() for c in coverage], "graph_key": graph.info.get("key"),
                  "scores": str(scores_dir)}
        write_nbest(out_dir / NBEST_FILE, NBestLists(header, lists))
        summary["nbest_rtf"] = nbest_s / audio_s
        summary["lattice_arcs_per_frame"] = lattice_arcs / max(frames, 1)
        summary["nbest_file"] = str(out_dir / NBEST_FILE)
    write_json(out_dir / "decode.json", summary)
    return summary
