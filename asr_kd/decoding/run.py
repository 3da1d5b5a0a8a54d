"""Decode a whole array store of per-frame senone scores into hypothesis text files."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from asr_kd.decoding.decoder import Decoder, DecoderConfig, scaled_log_likelihoods
from asr_kd.decoding.graph import DecodingGraph
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
    lm_weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Decode every utterance of ``scores_dir`` (an :class:`ArrayStore` of ``(T, num_senones)``).

    Writes ``out_dir/hyp.txt`` (best path at ``config.acoustic_scale``) or, with ``lm_weights``,
    one lattice search per utterance and ``out_dir/hyp_lmwt<W>.txt`` per weight; plus
    ``decode.json`` with the settings, failures and the real-time factors (search seconds per
    second of audio at 10 ms frames: ``rtf`` wall clock, ``cpu_rtf`` CPU time of this process,
    which is what one core costs when the machine is shared).

    Raises:
        AsrKdError: the store's column count differs from the graph's senone count.
    """
    store = ArrayStore(scores_dir)
    if store.trailing_shape != (graph.num_senones,):
        raise AsrKdError(
            f"{scores_dir}: rows have shape {store.trailing_shape}, the graph's tree has {graph.num_senones} "
            "senones: scores and graph come from different trees"
        )
    decoder = Decoder(graph, config)
    names = [f"hyp_lmwt{w:g}.txt" for w in lm_weights] if lm_weights else ["hyp.txt"]
    hyps: list[dict[str, str]] = [{} for _ in names]
    failed: dict[str, str] = {}
    not_final: list[str] = []  # best path ended in a non-final state (the search ran out of beam)
    frames, search_s, search_cpu_s = 0, 0.0, 0.0
    for utt_id in store:
        loglik = hmm_log_likelihoods(store[utt_id], kind, log_priors, prior_scale)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            if lm_weights:
                results = decoder.lattice_best_paths(decoder.lattice(loglik, utt_id), lm_weights)
            else:
                results = [decoder.best_path(loglik, utt_id)]
        except AsrKdError as err:
            if "search found no path" not in str(err):
                raise
            failed[utt_id] = str(err)
            log.warning("%s", err)
            continue
        finally:
            search_s += time.perf_counter() - t0
            search_cpu_s += time.process_time() - c0
            frames += len(loglik)
        if not results[0].reached_final:
            not_final.append(utt_id)
        for out, hyp in zip(hyps, results):
            out[utt_id] = " ".join(hyp.words)
    out_dir = Path(out_dir)
    for name, out in zip(names, hyps):
        write_text(out_dir / name, out)
    summary = {
        "graph_info": {k: graph.info.get(k) for k in ("num_states", "num_arcs", "key")},
        "scores": str(scores_dir),
        "kind": kind,
        "prior_scale": prior_scale,
        "config": asdict(config),
        "lm_weights": list(lm_weights or []),
        "utterances": len(store),
        "failed": len(failed),
        "failures": failed,
        "not_final": not_final,
        "frames": frames,
        "search_seconds": round(search_s, 3),
        "rtf": search_s / max(frames * FRAME_SHIFT_S, 1e-9),
        "cpu_rtf": search_cpu_s / max(frames * FRAME_SHIFT_S, 1e-9),
        "hypothesis_files": [str(out_dir / n) for n in names],
    }
    write_json(out_dir / "decode.json", summary)
    return summary
