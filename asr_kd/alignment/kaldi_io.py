"""Kaldi interoperability: pdf-id alignments as written by ``ali-to-pdf`` (ark or scp).

Import: users with a Kaldi system bring ``ali-to-pdf final.mdl ark:ali.ark ark,scp:pdf.ark,pdf.scp``
output plus the number of pdfs (``tree-info tree | grep num-pdfs``); the senone ids are their
pdf ids. Kaldi alignments carry no phone labels in pdf form, so an import writes the
``senones`` store only; utterances whose length differs from our features (different frame
settings) or that have no features are skipped and listed in ``skipped.tsv``.

Export: our senone alignment of a subset as a binary int32-vector ark (+ scp), readable by
Kaldi tools (``copy-int-vector``, ``ali-to-post``...) and by :func:`read_pdf_alignments`.
"""

from __future__ import annotations

import os
from pathlib import Path

import kaldiio
import numpy as np

from asr_kd.alignment.outputs import SKIPPED_FILE, write_id_store, write_skipped
from asr_kd.experiment import SENONES_DIR
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.atomic import atomic_path, replace_dir
from asr_kd.utils.errors import AsrKdError


def read_pdf_alignments(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``utt_id -> (T,) int32`` pdf ids from a Kaldi ark or scp file (chosen by extension)."""
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: Kaldi alignment file is missing")
    try:
        reader = kaldiio.load_scp(str(path)) if path.suffix == ".scp" else kaldiio.load_ark(str(path))
        items = {utt: np.asarray(ali) for utt, ali in (reader.items() if path.suffix == ".scp" else reader)}
    except Exception as err:  # kaldiio raises bare ValueError/struct.error/... on corrupt input
        raise AsrKdError(f"{path}: not a readable Kaldi ark/scp of int vectors ({type(err).__name__}: {err})") from None
    for utt, ali in items.items():
        if ali.ndim != 1 or not np.issubdtype(ali.dtype, np.integer):
            raise AsrKdError(f"{path}: entry {utt} is a {ali.dtype} array of shape {ali.shape}, "
                             "expected an int vector (output of ali-to-pdf)")
    return {utt: ali.astype(np.int32) for utt, ali in items.items()}


def import_pdf_alignments(path: str | os.PathLike, num_pdfs: int, feature_dir: str | os.PathLike,
                          out_dir: str | os.PathLike) -> tuple[int, dict[str, str], np.ndarray]:
    """Check Kaldi pdf alignments against our features and write them as ``out_dir/senones``.

    Returns:
        number of imported utterances, skipped ``utt_id -> reason``, and ``(num_pdfs,)`` int64
        frame counts (senone priors when the subset is the training set).

    Raises:
        AsrKdError: a pdf id outside ``0..num_pdfs-1`` (wrong ``--num-pdfs`` or not pdf ids).
    """
    if num_pdfs <= 0:
        raise AsrKdError(f"--num-pdfs must be positive, got {num_pdfs}")
    alignments = read_pdf_alignments(path)
    feats = ArrayStore(feature_dir)
    kept: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for utt, ali in sorted(alignments.items()):
        if len(ali) and (ali.min() < 0 or ali.max() >= num_pdfs):
            raise AsrKdError(f"{path}: utterance {utt} has pdf ids {ali.min()}..{ali.max()}, outside "
                             f"0..{num_pdfs - 1} (wrong --num-pdfs, or transition ids instead of pdf ids?)")
        if utt not in feats:
            skipped[utt] = f"no features in {feature_dir}"
        elif len(ali) != feats.num_rows(utt):
            skipped[utt] = f"{len(ali)} alignment frames but {feats.num_rows(utt)} feature frames"
        else:
            kept[utt] = ali
    for utt in feats:
        if utt not in alignments:
            skipped[utt] = f"not in {path}"
    meta = {"kind": "senones", "num_senones": num_pdfs, "source": str(path)}

    def fill(tmp: Path) -> None:
        write_id_store(tmp / SENONES_DIR, kept, meta)
        write_skipped(tmp / SKIPPED_FILE, skipped)

    replace_dir(out_dir, fill)
    counts = np.zeros(num_pdfs, dtype=np.int64)
    for ali in kept.values():
        counts += np.bincount(ali, minlength=num_pdfs)
    return len(kept), skipped, counts


def export_pdf_alignments(store_dir: str | os.PathLike, ark_path: str | os.PathLike) -> int:
    """Write an ``ArrayStore`` of senone ids as a Kaldi int-vector ark plus ``.scp``; returns #utts."""
    store = ArrayStore(store_dir)
    ark_path = Path(ark_path)
    scp_path = ark_path.with_suffix(".scp")
    # The scp records byte offsets into the ark, so both are written to temporaries, then the
    # scp is rewritten to name the final ark path before both are moved into place.
    with atomic_path(ark_path, suffix=".ark") as tmp_ark, atomic_path(scp_path, suffix=".scp") as tmp_scp:
        kaldiio.save_ark(str(tmp_ark), {u: np.asarray(store[u], dtype=np.int32) for u in sorted(store)},
                         scp=str(tmp_scp))
        text = tmp_scp.read_text(encoding="utf-8").replace(str(tmp_ark), str(ark_path))
        tmp_scp.write_text(text, encoding="utf-8")
    return len(store)
