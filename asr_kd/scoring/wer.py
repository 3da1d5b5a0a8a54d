"""Word error rate with jiwer: overall and per utterance, as JSON and a Kaldi-style alignment file.

Transcript files are Kaldi ``text`` files (``utt_id WORD WORD ...`` per line); references can
also come from an asr_kd manifest (``.tsv``, column ``transcript``). An utterance with no
hypothesis counts as all deletions (and is listed), the way a decoder that failed on it should.

The alignment file has Kaldi's ``wer_per_utt_details`` layout, four lines per utterance::

    utt_id ref  THE CAT ***  SAT
    utt_id hyp  THE BAT A    SAT
    utt_id op   C   S   I    C
    utt_id #csid 2 1 1 0
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import jiwer

from asr_kd.data.manifest import read_manifest
from asr_kd.utils.atomic import atomic_open, write_json
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("scoring.wer")
_OPS = {"equal": "C", "substitute": "S", "delete": "D", "insert": "I"}


@dataclass(frozen=True)
class UtteranceErrors:
    """Edit-distance alignment of one utterance. ``ops``: per aligned position, C/S/D/I."""

    utt_id: str
    ref: tuple[str, ...]
    hyp: tuple[str, ...]
    ops: tuple[str, ...]

    def count(self, op: str) -> int:
        return self.ops.count(op)

    @property
    def errors(self) -> int:
        return len(self.ops) - self.count("C")


@dataclass(frozen=True)
class WerSummary:
    """Corpus totals; ``wer = (substitutions + deletions + insertions) / ref_words``."""

    wer: float
    ref_words: int
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    utterances: int
    sentence_errors: int
    missing_hypotheses: int


def read_text(path: str | os.PathLike) -> dict[str, str]:
    """Read a Kaldi ``text`` file (``utt_id words...``); words are upper-cased."""
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: transcript file is missing")
    out: dict[str, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        utt_id, _, words = line.strip().partition(" ")
        if utt_id in out:
            raise AsrKdError(f"{path}:{line_no}: utterance {utt_id} appears twice")
        out[utt_id] = " ".join(words.upper().split())
    return out


def read_references(path: str | os.PathLike) -> dict[str, str]:
    """References from a manifest (``.tsv``) or a Kaldi ``text`` file."""
    if str(path).endswith(".tsv"):
        return {u.utt_id: u.transcript for u in read_manifest(path)}
    return read_text(path)


def write_text(path: str | os.PathLike, transcripts: Mapping[str, str]) -> None:
    """Atomically write a Kaldi ``text`` file (utterances in the given order)."""
    with atomic_open(path) as f:
        for utt_id, words in transcripts.items():
            f.write(f"{utt_id} {words}".rstrip() + "\n")


def align_words(refs: Mapping[str, str], hyps: Mapping[str, str]) -> list[UtteranceErrors]:
    """Align each reference with its hypothesis (missing hypothesis = empty).

    Raises:
        AsrKdError: a hypothesis for an utterance that has no reference.
    """
    unknown = [u for u in hyps if u not in refs]
    if unknown:
        raise AsrKdError(f"{len(unknown)} hypotheses have no reference, e.g. {unknown[:3]}")
    utt_ids = list(refs)
    if not utt_ids:
        raise AsrKdError("no reference transcripts to score")
    output = jiwer.process_words([refs[u] for u in utt_ids], [hyps.get(u, "") for u in utt_ids])
    result = []
    for utt_id, ref, hyp, chunks in zip(utt_ids, output.references, output.hypotheses, output.alignments):
        ops: list[str] = []
        for chunk in chunks:
            length = max(chunk.ref_end_idx - chunk.ref_start_idx, chunk.hyp_end_idx - chunk.hyp_start_idx)
            ops += [_OPS[chunk.type]] * length
        result.append(UtteranceErrors(utt_id, tuple(ref), tuple(hyp), tuple(ops)))
    return result


def summarize(utterances: list[UtteranceErrors], missing: int = 0) -> WerSummary:
    """Corpus totals of per-utterance alignments."""
    ref_words = sum(len(u.ref) for u in utterances)
    subs, dels, ins = (sum(u.count(op) for u in utterances) for op in "SDI")
    return WerSummary(
        wer=(subs + dels + ins) / max(ref_words, 1),
        ref_words=ref_words,
        substitutions=subs,
        deletions=dels,
        insertions=ins,
        hits=sum(u.count("C") for u in utterances),
        utterances=len(utterances),
        sentence_errors=sum(u.errors > 0 for u in utterances),
        missing_hypotheses=missing,
    )


def kaldi_alignment_lines(utt: UtteranceErrors) -> list[str]:
    """The four ``wer_per_utt_details`` lines of one utterance (``***`` marks a gap)."""
    ref, hyp, i, j = [], [], 0, 0
    for op in utt.ops:
        ref.append("***" if op == "I" else utt.ref[i])
        hyp.append("***" if op == "D" else utt.hyp[j])
        i += op != "I"
        j += op != "D"
    widths = [max(len(r), len(h)) for r, h in zip(ref, hyp)]

    def fmt(tokens: Sequence[str]) -> str:
        return " ".join(t.ljust(w) for t, w in zip(tokens, widths))
    counts = " ".join(str(utt.count(op)) for op in "CSID")
    return [
        f"{utt.utt_id} ref  {fmt(ref)}".rstrip(),
        f"{utt.utt_id} hyp  {fmt(hyp)}".rstrip(),
        f"{utt.utt_id} op   {fmt(utt.ops)}".rstrip(),
        f"{utt.utt_id} #csid {counts}",
    ]


def score(
    refs: Mapping[str, str],
    hyps: Mapping[str, str],
    out_json: str | os.PathLike,
    out_alignment: str | os.PathLike,
    extra: Mapping[str, object] | None = None,
) -> WerSummary:
    """Score ``hyps`` against ``refs``; write the JSON report and the alignment text file.

    The JSON holds ``summary`` (:class:`WerSummary`), ``missing_hypotheses`` (utterance ids),
    ``utterances`` (per utterance ``ref_words``, ``substitutions``, ``deletions``, ``insertions``,
    ``wer``) and the keys of ``extra`` (e.g. the ``scoring`` settings the hypotheses were chosen with).
    """
    missing = [u for u in refs if u not in hyps]
    if missing:
        log.warning("%d of %d utterances have no hypothesis (counted as deletions), e.g. %s",
                    len(missing), len(refs), missing[:3])
    utterances = align_words(refs, hyps)
    summary = summarize(utterances, len(missing))
    per_utt = {
        u.utt_id: {
            "ref_words": len(u.ref),
            "substitutions": u.count("S"),
            "deletions": u.count("D"),
            "insertions": u.count("I"),
            "wer": u.errors / max(len(u.ref), 1),
        }
        for u in utterances
    }
    write_json(out_json, {"summary": asdict(summary), **(extra or {}), "missing_hypotheses": missing,
                          "utterances": per_utt})
    with atomic_open(out_alignment) as f:
        for u in utterances:
            f.write("\n".join(kaldi_alignment_lines(u)) + "\n")
    return summary
