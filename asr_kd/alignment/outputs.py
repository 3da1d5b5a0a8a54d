"""Alignment outputs on disk: ``<exp>/ali/<subset>/`` (:meth:`asr_kd.experiment.Experiment.ali_dir`)::

    senones/      ArrayStore, int32 (T,) senone id per feature frame, keyed by utterance id
    phones/       ArrayStore, int32 (T,) phone id (index of PHONES) per feature frame
    skipped.tsv   utt_id <TAB> reason, one line per utterance that could not be aligned
    words.ctm     utt_id 1 start_s duration_s WORD   (Kaldi CTM, 10 ms frames)
    phones.ctm    utt_id 1 start_s duration_s PHONE  (silence included)

The whole directory is written next to its final place and renamed into it, so a reader never
sees a mix of two runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from asr_kd.alignment.aligner import FRAME_SHIFT_S, UttAlignment
from asr_kd.experiment import PHONES_CTM, PHONES_DIR, SENONES_DIR
from asr_kd.utils.array_store import ArrayStoreWriter
from asr_kd.utils.atomic import replace_dir
from asr_kd.utils.errors import AsrKdError

SKIPPED_FILE = "skipped.tsv"
WORDS_CTM = "words.ctm"
UTTS_PER_SHARD = 200


def write_id_store(root: Path, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    """Write ``utt_id -> (T,)`` integer arrays as an int32 ArrayStore at ``root`` (sorted ids)."""
    writer = ArrayStoreWriter(root, "int32", (), meta)
    ids = sorted(arrays)
    for shard_id, start in enumerate(range(0, len(ids), UTTS_PER_SHARD)):
        writer.write_shard(shard_id, ((u, arrays[u]) for u in ids[start : start + UTTS_PER_SHARD]))


def write_skipped(path: Path, skipped: Mapping[str, str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{u}\t{reason}\n" for u, reason in sorted(skipped.items()))


def write_alignment_dir(out_dir: str | os.PathLike, alignments: dict[str, UttAlignment], skipped: dict[str, str],
                        meta: dict) -> None:
    """Write (replace) an alignment directory; ``meta`` goes into both stores' ``meta.json``."""
    ids = sorted(alignments)

    def fill(tmp: Path) -> None:
        write_id_store(tmp / SENONES_DIR, {u: alignments[u].senones for u in ids}, {**meta, "kind": SENONES_DIR})
        write_id_store(tmp / PHONES_DIR, {u: alignments[u].phones for u in ids}, {**meta, "kind": PHONES_DIR})
        write_skipped(tmp / SKIPPED_FILE, skipped)
        _write_ctm(tmp / WORDS_CTM, ((u, alignments[u].words) for u in ids))
        _write_ctm(tmp / PHONES_CTM, ((u, alignments[u].phone_segments) for u in ids))

    replace_dir(out_dir, fill)


def _write_ctm(path: Path, segments: Iterable[tuple[str, list[tuple[str, int, int]]]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for utt_id, segs in segments:
            for label, start, end in segs:
                f.write(f"{utt_id} 1 {start * FRAME_SHIFT_S:.2f} {(end - start) * FRAME_SHIFT_S:.2f} {label}\n")


def read_ctm(path: str | os.PathLike) -> dict[str, list[tuple[str, float, float]]]:
    """``utt_id -> [(label, start_s, end_s), ...]`` of a CTM file."""
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: missing (run `asr-kd align` first)")
    out: dict[str, list[tuple[str, float, float]]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if len(parts) != 5:
                raise AsrKdError(f"{path}:{line_no}: expected 5 CTM fields, got {len(parts)}")
            start, dur = float(parts[2]), float(parts[3])
            out.setdefault(parts[0], []).append((parts[4], start, start + dur))
    return out


def read_skipped(path: str | os.PathLike) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("\t", 1) for line in f if line.strip())
