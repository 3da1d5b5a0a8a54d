"""Decode a whole array store of per-frame senone scores into hypothesis text files."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from asr_kd.decoding.decoder import Decoder, DecoderConfig, NoPathError, scaled_log_likelihoods
from asr_kd.decoding.graph import DecodingGraph
from asr_kd.decoding.nbest import NBEST_FILE, Hypothesis, NBestLists, ScoringSetting, kaldi_grid, write_nbest
from asr_kd.scoring.wer import write_text
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.atomic import write_json
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("decoding.run")
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
) -> dict[str, Any]:
    """Decode every utterance of ``scores_dir`` (an :class:`ArrayStore` of ``(T, num_senones)``).

    Writes ``out_dir/hyp.txt`` (best path at ``config.acoustic_scale``); with ``nbest > 0`` the
    search is a lattice search and ``out_dir/nbest.jsonl.gz`` gets the ``nbest`` best word
    sequences of each utterance with their graph, acoustic and prior costs apart
    (:mod:`asr_kd.decoding.nbest`; ``hyp.txt`` is then its first entry). ``decode.json`` holds
    the settings, failures and the real-time factors (search seconds per second of audio at 10 ms
    frames: ``rtf`` wall clock, ``cpu_rtf`` CPU time of this process, which is what one core
    costs when the machine is shared; with ``nbest`` also ``nbest_rtf``, the N-best extraction
    alone, included in ``rtf``).

    ``utt_ids`` restricts the decode to those utterances (all of the store by default).
    ``coverage``: the settings whose best word-graph paths join each N-best list (default
    :func:`asr_kd.decoding.nbest.kaldi_grid` at ``prior_scale``; ``[]`` for none).

    Raises:
        AsrKdError: the store's column count differs from the graph's senone count; an
            utterance of ``utt_ids`` is not in the store.
    """
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
    decoder = Decoder(graph, config)
    hyps: dict[str, str] = {}
    lists: dict[str, list[Hypothesis]] = {}
    failed: dict[str, str] = {}
    not_final: list[str] = []  # best path ended in a non-final state (the search ran out of beam)
    frames, search_s, search_cpu_s, nbest_s = 0, 0.0, 0.0, 0.0
    priors_for_nbest = log_priors if kind != "log-likelihoods" else None
    if coverage is None:
        coverage = kaldi_grid(prior_scale)
    for utt_id in tqdm(utt_ids, desc="decode", unit="utt", leave=False):
        loglik = hmm_log_likelihoods(store[utt_id], kind, log_priors, prior_scale)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            if nbest:
                lattice = decoder.lattice(loglik, utt_id)
                t1 = time.perf_counter()
                lists[utt_id] = decoder.nbest(lattice, nbest, priors_for_nbest, utt_id, coverage, prior_scale)
                nbest_s += time.perf_counter() - t1
                reached_final, words = lattice.reached_final, lists[utt_id][0].words
            else:
                best = decoder.best_path(loglik, utt_id)
                reached_final, words = best.reached_final, best.words
        except NoPathError as err:
            failed[utt_id] = str(err)
            log.warning("%s", err)
            continue
        finally:
            search_s += time.perf_counter() - t0
            search_cpu_s += time.process_time() - c0
            frames += len(loglik)
        if not reached_final:
            not_final.append(utt_id)
        hyps[utt_id] = " ".join(words)
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
        "hypothesis_files": [str(out_dir / "hyp.txt")],
    }
    if nbest:
        header = {"acoustic_scale": config.acoustic_scale, "prior_scale": prior_scale, "n": nbest,
                  "coverage": [c.as_dict() for c in coverage], "graph_key": graph.info.get("key"),
                  "scores": str(scores_dir)}
        write_nbest(out_dir / NBEST_FILE, NBestLists(header, lists))
        summary["nbest_rtf"] = nbest_s / audio_s
        summary["nbest_file"] = str(out_dir / NBEST_FILE)
    write_json(out_dir / "decode.json", summary)
    return summary
