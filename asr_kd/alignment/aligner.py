"""Align many utterances: graph compilation, GMM scoring and batched Viterbi over a process pool.

Utterances are sorted by length and cut into batches of similar length (one Viterbi run each,
see :mod:`asr_kd.alignment.viterbi`); batches are spread over worker processes forked from
the caller, so features and models are shared copy-on-write instead of pickled per task.
Results are deterministic: they do not depend on the number of workers or the batch order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from asr_kd.alignment.gmm import DiagGmms
from asr_kd.alignment.questions import CONTEXTS, EDGE
from asr_kd.alignment.tree import SenoneTree
from asr_kd.alignment.utterance_graph import AlignGraph, build_graph, equal_alignment
from asr_kd.alignment.viterbi import viterbi_batch
from asr_kd.data.lexicon import Lexicon
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.processes import worker_pool

#: Weight of GMM log-likelihoods against HMM transition log-probs. Kaldi aligns with acoustic
#: scale 0.1 but also scales self-loop (and so forward) log-probs by 0.1 (--self-loop-scale),
#: the same balance as 1.0 on both here. 0.1 on acoustics alone over-weights transitions: cheap
#: silence self-loops then eat word endings before pauses (measured on dev-clean-2 without
#: speaker 84: 88.0% -> 90.9% of word boundaries within 50 ms of MFA going from 0.1 to 1.0).
ACOUSTIC_SCALE = 1.0
CONTEXT_ID = {c: i for i, c in enumerate(CONTEXTS)}
FRAME_SHIFT_S = 0.01


@dataclass(frozen=True)
class AlignerModel:
    """Everything alignment needs; ``gmms`` ``None`` means flat start (equal alignment).

    ``feature_config`` is the fbank configuration the GMMs were trained on (checked against
    the features of a subset before aligning it).
    """

    tree: SenoneTree
    gmms: DiagGmms | None
    lexicon: Lexicon
    acoustic_scale: float = ACOUSTIC_SCALE
    interword_silence: bool = True
    feature_config: dict | None = None


@dataclass
class UttAlignment:
    """Alignment of one utterance; per-frame arrays are ``(T,)``.

    Attributes:
        senones, phones: int32 ids (phones index ``PHONES``).
        hmm_state: int32 state within the phone; ``entered``: bool, first frame of a state visit.
        left, right: int32 context ids (index ``CONTEXTS``; the edge symbol for none).
        words: ``(word, first frame, end frame)`` per word (end exclusive); silence excluded.
        phone_segments: ``(phone, first frame, end frame)`` per phone occurrence, silence included.
        score: Viterbi log-score (``nan`` for equal alignment).
    """

    utt_id: str
    senones: np.ndarray
    phones: np.ndarray
    hmm_state: np.ndarray
    entered: np.ndarray
    left: np.ndarray
    right: np.ndarray
    words: list[tuple[str, int, int]]
    phone_segments: list[tuple[str, int, int]]
    score: float


@dataclass(frozen=True)
class AlignmentRun:
    """Output of :func:`align_corpus`: alignments, skipped utterances with reasons, timing."""

    alignments: dict[str, UttAlignment]
    skipped: dict[str, str]
    audio_seconds: float
    wall_seconds: float
    cpu_seconds: float

    @property
    def realtime_factor_per_core(self) -> float:
        """Seconds of audio aligned per CPU-second of the workers."""
        return self.audio_seconds / max(self.cpu_seconds, 1e-9)


def alignment_from_states(utt_id: str, graph: AlignGraph, states: np.ndarray, score: float) -> UttAlignment:
    """Turn a ``(T,)`` graph-state path into per-frame ids and word/phone segments."""
    node_ids = graph.node_of_state[states]
    change = np.flatnonzero(np.diff(node_ids)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(states)]])
    phone_segments, words = [], []
    for start, end in zip(starts, ends):
        node = graph.nodes[node_ids[start]]
        phone_segments.append((node.phone, int(start), int(end)))
        if node.word < 0:
            continue
        if words and words[-1][0] == node.word:
            words[-1][2] = int(end)
        else:
            words.append([node.word, int(start), int(end)])
    node_left = np.array([CONTEXT_ID[n.left or EDGE] for n in graph.nodes], dtype=np.int32)
    node_right = np.array([CONTEXT_ID[n.right or EDGE] for n in graph.nodes], dtype=np.int32)
    entered = np.ones(len(states), dtype=bool)
    entered[1:] = states[1:] != states[:-1]
    return UttAlignment(
        utt_id=utt_id,
        senones=graph.senones[states],
        phones=graph.phone_ids[states],
        hmm_state=graph.hmm_state[states],
        entered=entered,
        left=node_left[node_ids],
        right=node_right[node_ids],
        words=[(graph.words[w], s, e) for w, s, e in words],
        phone_segments=phone_segments,
        score=score,
    )


def align_batch(model: AlignerModel, items: list[tuple[str, list[str], np.ndarray]]
                ) -> list[UttAlignment | str]:
    """Align ``(utt_id, words, (T, D) features)`` items; a string result is the skip reason."""
    results: list[UttAlignment | str] = [""] * len(items)
    todo: list[tuple[int, AlignGraph, np.ndarray]] = []
    for i, (utt_id, words, feats) in enumerate(items):
        try:
            graph = build_graph(words, model.lexicon, model.tree, model.interword_silence)
        except AsrKdError as err:
            results[i] = str(err)
            continue
        if len(feats) < graph.min_frames:
            results[i] = f"transcript needs at least {graph.min_frames} frames, audio has {len(feats)}"
        elif model.gmms is None:
            try:
                results[i] = alignment_from_states(utt_id, graph, equal_alignment(graph, len(feats)), float("nan"))
            except AsrKdError as err:
                results[i] = str(err)
        else:
            todo.append((i, graph, feats))
    if todo:
        emissions = []
        for _, graph, feats in todo:
            used, inverse = np.unique(graph.senones, return_inverse=True)
            emissions.append(model.acoustic_scale * model.gmms.loglik(feats, used)[:, inverse])
        for (i, graph, _), res in zip(todo, viterbi_batch([g for _, g, _ in todo], emissions)):
            utt_id = items[i][0]
            results[i] = ("no path through the transcript's states fits the audio" if res.states is None
                          else alignment_from_states(utt_id, graph, res.states, res.score))
    return results


# Set by align_corpus before forking workers, read by _align_worker (shared copy-on-write).
_SHARED: dict = {}


def _align_worker(batch: list[str]) -> tuple[list[tuple[str, UttAlignment | str]], float]:
    start = time.process_time()
    model, feats, transcripts = _SHARED["model"], _SHARED["feats"], _SHARED["transcripts"]
    items = [(u, transcripts[u].split(), feats[u]) for u in batch]
    out = list(zip(batch, align_batch(model, items)))
    return out, time.process_time() - start


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def make_batches(lengths: dict[str, int], max_frames: int = 20000, max_utts: int = 16) -> list[list[str]]:
    """Group utterance ids of similar length (sorted, ties by id) into Viterbi batches.

    ``max_frames`` bounds the padded frames of a batch, which bounds the Viterbi work arrays
    (``(T_max, states)``: ~50 MB for 20k frames of LibriSpeech speech); 16 utterances already
    amortise the per-frame Python overhead.
    """
    order = sorted(lengths, key=lambda u: (lengths[u], u))
    batches: list[list[str]] = []
    current: list[str] = []
    for utt_id in order:
        if current and (len(current) >= max_utts or lengths[utt_id] * (len(current) + 1) > max_frames):
            batches.append(current)
            current = []
        current.append(utt_id)
    if current:
        batches.append(current)
    return batches


def align_corpus(model: AlignerModel, feats: dict[str, np.ndarray], transcripts: dict[str, str],
                 jobs: int = 1, desc: str = "align", progress: bool = True) -> AlignmentRun:
    """Align every utterance of ``feats`` (``utt_id -> (T, D)``) to its transcript.

    Args:
        transcripts: ``utt_id -> upper-case words``; every utterance of ``feats`` needs one.
        jobs: worker processes (1 = in this process).
    """
    missing = [u for u in feats if u not in transcripts]
    if missing:
        raise AsrKdError(f"{len(missing)} utterances have features but no transcript, e.g. {missing[:3]}")
    # Longest batches first, so that no worker starts a long batch when the others are done.
    batches = make_batches({u: len(f) for u, f in feats.items()})[::-1]
    _SHARED.update(model=model, feats=feats, transcripts=transcripts)
    start = time.perf_counter()
    cpu = 0.0
    alignments: dict[str, UttAlignment] = {}
    skipped: dict[str, str] = {}
    bar = tqdm(total=len(feats), desc=desc, unit="utt", disable=not progress, leave=False)
    try:
        for out, batch_cpu in _run_batches(batches, jobs):
            cpu += batch_cpu
            for utt_id, result in out:
                if isinstance(result, str):
                    skipped[utt_id] = result
                else:
                    alignments[utt_id] = result
            bar.update(len(out))
    finally:
        bar.close()
        _SHARED.clear()
    frames = sum(len(feats[u]) for u in alignments) + sum(len(feats[u]) for u in skipped)
    return AlignmentRun(
        alignments={u: alignments[u] for u in sorted(alignments)},
        skipped={u: skipped[u] for u in sorted(skipped)},
        audio_seconds=frames * FRAME_SHIFT_S,
        wall_seconds=time.perf_counter() - start,
        cpu_seconds=cpu,
    )


def _run_batches(batches: list[list[str]], jobs: int) -> Iterator[tuple[list, float]]:
    if jobs <= 1:
        yield from map(_align_worker, batches)
        return
    with worker_pool(jobs, "fork", initializer=_init_worker) as pool:
        yield from pool.map(_align_worker, batches)
