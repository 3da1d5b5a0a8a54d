"""Alignment quality report: phone durations, silence fraction, word-boundary agreement.

Reference word boundaries come as a TSV with columns ``utt_id word start_s end_s ...`` (the
Montreal Forced Aligner segments in ``../shared/data/alignments/mfa_word_segments.tsv``). The
reference may list only some words of an utterance, so each reference word is matched to the
occurrence of the same word in our alignment of that utterance whose start and end are closest;
its start and end are then two boundaries whose errors are compared to the tolerances.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_kd.alignment.outputs import WORDS_CTM, read_ctm
from asr_kd.data.lexicon import SILENCE, SPOKEN_NOISE
from asr_kd.experiment import PHONES_CTM
from asr_kd.utils.errors import AsrKdError

TOLERANCES_S = (0.02, 0.05)


@dataclass(frozen=True)
class PhoneDurations:
    """Duration statistics of one phone over all its aligned occurrences, in milliseconds."""

    phone: str
    count: int
    mean_ms: float
    median_ms: float
    p5_ms: float
    p95_ms: float


def phone_durations(phone_segments: dict[str, list[tuple[str, float, float]]]) -> list[PhoneDurations]:
    """Per-phone statistics of ``utt_id -> [(phone, start_s, end_s)]`` segments, most frequent first."""
    by_phone: dict[str, list[float]] = {}
    for segs in phone_segments.values():
        for phone, start, end in segs:
            by_phone.setdefault(phone, []).append(1000.0 * (end - start))
    out = []
    for phone, durs in by_phone.items():
        d = np.asarray(durs)
        out.append(PhoneDurations(phone, len(d), float(d.mean()), float(np.median(d)),
                                  float(np.percentile(d, 5)), float(np.percentile(d, 95))))
    return sorted(out, key=lambda p: (-p.count, p.phone))


def silence_fractions(phone_segments: dict[str, list[tuple[str, float, float]]]) -> dict[str, float]:
    """Fraction of aligned time in ``SIL`` and in ``SPN`` (spoken noise / OOV words)."""
    total = sum(end - start for segs in phone_segments.values() for _, start, end in segs)
    out = {}
    for phone in (SILENCE, SPOKEN_NOISE):
        time = sum(end - start for segs in phone_segments.values() for p, start, end in segs if p == phone)
        out[phone] = time / total if total else 0.0
    return out


@dataclass(frozen=True)
class BoundaryAgreement:
    """Agreement of word boundaries with a reference.

    Attributes:
        reference_words: words in the reference for utterances we were asked about.
        matched_words: of those, found in our alignment (2 boundaries each).
        within: tolerance (s) -> fraction of matched boundaries within it.
        mean_abs_error_ms, median_abs_error_ms: over matched boundaries.
    """

    reference_words: int
    matched_words: int
    within: dict[float, float]
    mean_abs_error_ms: float
    median_abs_error_ms: float


def read_reference(path: str | os.PathLike) -> dict[str, list[tuple[str, float, float]]]:
    """``utt_id -> [(WORD, start_s, end_s)]`` from a TSV with a header ``utt_id word start_s end_s ...``."""
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: reference alignment file is missing")
    out: dict[str, list[tuple[str, float, float]]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        needed = {"utt_id", "word", "start_s", "end_s"}
        if not needed <= set(reader.fieldnames or ()):
            raise AsrKdError(f"{path}: needs columns {sorted(needed)}, has {reader.fieldnames}")
        for line_no, row in enumerate(reader, start=2):
            try:
                start, end = float(row["start_s"]), float(row["end_s"])
            except ValueError:
                raise AsrKdError(f"{path}:{line_no}: start_s/end_s are not numbers") from None
            out.setdefault(row["utt_id"], []).append((row["word"].upper(), start, end))
    return out


def boundary_agreement(ours: dict[str, list[tuple[str, float, float]]],
                       reference: dict[str, list[tuple[str, float, float]]],
                       tolerances: tuple[float, ...] = TOLERANCES_S) -> BoundaryAgreement:
    """Compare word boundaries of the utterances in both ``ours`` and ``reference`` (see module doc)."""
    errors: list[float] = []
    ref_words = 0
    for utt_id, ref_words_utt in reference.items():
        if utt_id not in ours:
            continue
        ref_words += len(ref_words_utt)
        for word, start, end in ref_words_utt:
            candidates = [(abs(s - start), abs(e - end)) for w, s, e in ours[utt_id] if w == word]
            if candidates:
                errors.extend(min(candidates, key=sum))
    err = np.asarray(errors)
    return BoundaryAgreement(
        reference_words=ref_words,
        matched_words=len(err) // 2,
        within={t: float((err <= t + 1e-9).mean()) if len(err) else 0.0 for t in tolerances},
        mean_abs_error_ms=float(1000 * err.mean()) if len(err) else float("nan"),
        median_abs_error_ms=float(1000 * np.median(err)) if len(err) else float("nan"),
    )


def alignment_report(ali_dir: str | os.PathLike, reference: str | os.PathLike | None = None) -> dict:
    """Report of an alignment directory as a JSON-able dict (durations, silence, agreement)."""
    ali_dir = Path(ali_dir)
    phones = read_ctm(ali_dir / PHONES_CTM)
    report: dict = {
        "utterances": len(phones),
        "silence_fraction": silence_fractions(phones),
        "phone_durations": [vars(p) for p in phone_durations(phones)],
    }
    if reference is not None:
        agreement = boundary_agreement(read_ctm(ali_dir / WORDS_CTM), read_reference(reference))
        report["word_boundaries"] = {
            "reference": str(reference),
            "reference_words": agreement.reference_words,
            "matched_words": agreement.matched_words,
            **{f"within_{int(t * 1000)}ms": v for t, v in agreement.within.items()},
            "mean_abs_error_ms": agreement.mean_abs_error_ms,
            "median_abs_error_ms": agreement.median_abs_error_ms,
        }
    return report


def format_report(report: dict, top: int = 45) -> str:
    """Human-readable text of :func:`alignment_report`'s dict."""
    sil = report["silence_fraction"]
    lines = [f"utterances: {report['utterances']}; silence (SIL) {100 * sil[SILENCE]:.1f}% of time, "
             f"spoken noise (SPN) {100 * sil[SPOKEN_NOISE]:.1f}%",
             f"{'phone':<6} {'count':>7} {'mean_ms':>8} {'median':>7} {'p5':>6} {'p95':>6}"]
    for p in report["phone_durations"][:top]:
        lines.append(f"{p['phone']:<6} {p['count']:>7} {p['mean_ms']:>8.1f} {p['median_ms']:>7.1f} "
                     f"{p['p5_ms']:>6.1f} {p['p95_ms']:>6.1f}")
    wb = report.get("word_boundaries")
    if wb:
        lines.append(f"word boundaries vs {wb['reference']}: {wb['matched_words']}/{wb['reference_words']} reference "
                     f"words matched; within 20 ms {100 * wb['within_20ms']:.1f}%, within 50 ms "
                     f"{100 * wb['within_50ms']:.1f}%; mean |error| {wb['mean_abs_error_ms']:.1f} ms, "
                     f"median {wb['median_abs_error_ms']:.1f} ms")
    return "\n".join(lines)
