"""The validation split: training utterances held out for the LR schedule, early stopping and model selection.

Nothing a recipe reports may be selected on the reported set, so every per-epoch decision of
the trainer (newbob LR halving, early stopping, which epoch becomes ``model.pt``) reads a fixed
part of the *training* subset that no system of the experiment trains on; the dev/test subsets
are scored once, at the end, with ``asr-kd evaluate``.

``asr-kd valid-split`` writes the split once per experiment and every later stage reads it::

    <exp>/splits/<subset>/valid.txt   held-out utterance ids, one per line, sorted
    <exp>/splits/<subset>/train.txt   the remaining utterance ids (what training, the teacher
                                      store and the LM text may use)
    <exp>/splits/<subset>/split.json  settings, counts per speaker, hours, the sha256 of valid.txt

How utterances are chosen (``stratify``):

* ``speaker`` (default): ``round(fraction * N)`` utterances in all, shared out over the
  speakers in proportion to their utterance counts (each speaker gets the whole part of
  ``fraction * n``, the largest remainders get one more; never all of a speaker's
  utterances), chosen at random within each speaker, so validation covers the training
  speakers and genders in proportion. Kaldi's nnet3 ``get_egs.sh`` holds out ~300 random training utterances the same
  way (of corpora with 10^5 utterances); nnet1's ``subset_data_dir_tr_cv.sh`` holds out 10% of
  the speakers instead, which for a subset with 13 speakers would be one or two speakers: a
  validation set of one voice, and a speaker less to train on.
* ``none``: ``ceil(fraction * N)`` utterances uniformly at random
  (:func:`asr_kd.data.subset.fraction_of_ids`, the same choice as ``asr-kd subset``).
* ``held-out-speakers``: whole speakers, in a seeded random order, until they hold
  ``round(fraction * N)`` utterances (at least one speaker, never all of them): nnet1's
  ``subset_data_dir_tr_cv.sh``. What a speaker-disjoint validation measures that the default
  cannot: how a model does on voices it never trained on (e.g. specialists fine-tuned on a
  few speakers' frames of their cluster, ``local/e3_specialists.sh --specialist-valid speakers``).

``write_split(..., utts=...)`` splits only the listed utterances, e.g. the experiment's own
``train.txt``, so a second, nested split leaves the experiment's validation utterances out of both.

The choice depends only on the set of (utterance, speaker) pairs, ``fraction``, ``seed`` and
``stratify``, never on file order. An existing split is reused when the settings match and is
an error otherwise: all systems of an experiment must share one split.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_kd.data.manifest import read_manifest
from asr_kd.data.subset import fraction_of_ids
from asr_kd.experiment import Experiment
from asr_kd.utils.atomic import atomic_open, write_json
from asr_kd.utils.errors import AsrKdError

STRATIFY_MODES = ("speaker", "none", "held-out-speakers")
VALID_FILE, TRAIN_FILE, SPLIT_FILE = "valid.txt", "train.txt", "split.json"
DEFAULT_FRACTION = 0.1


def list_digest(utt_ids: Iterable[str]) -> str:
    """sha256 (hex) of the sorted, newline-terminated ids: the bytes of a list file this module writes."""
    return hashlib.sha256("".join(u + "\n" for u in sorted(utt_ids)).encode()).hexdigest()


def read_utt_list(path: str | os.PathLike, what: str = "utterance list") -> list[str]:
    """Sorted unique ids of a file with one utterance id per line (blank lines ignored)."""
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: {what} does not exist")
    ids = sorted({line.strip() for line in path.read_text().splitlines() if line.strip()})
    if not ids:
        raise AsrKdError(f"{path}: {what} is empty")
    return ids


def read_listed_utts(path: str | os.PathLike, available: Iterable[str], where: str) -> list[str]:
    """The ids of an ``--utts`` file (:func:`read_utt_list`), each checked to be in ``available``.

    Args:
        available: the ids the command can process (e.g. a feature store's keys).
        where: what ``available`` is, for the error, e.g. ``"the dev-clean-2 features"``.

    Raises:
        AsrKdError: naming the file, how many ids are unknown and the first of them (a silently
            shorter list would give a result over other utterances than the user asked for).
    """
    wanted = read_utt_list(path, "utterance list (--utts)")
    known = set(available)
    unknown = [u for u in wanted if u not in known]
    if unknown:
        raise AsrKdError(f"{path}: {len(unknown)} of {len(wanted)} listed utterance(s) not in {where} "
                         f"(first: {unknown[0]})")
    return wanted


def choose_validation(speaker_of: Mapping[str, str], fraction: float, seed: int = 0,
                      stratify: str = "speaker") -> list[str]:
    """The held-out utterance ids (sorted) of ``{utterance id: speaker}``; see the module docstring."""
    if not 0.0 < fraction < 1.0:
        raise AsrKdError(f"validation fraction must be in (0, 1), got {fraction}")
    if stratify not in STRATIFY_MODES:
        raise AsrKdError(f"unknown stratification {stratify!r}; choose from {STRATIFY_MODES}")
    if len(speaker_of) < 2:
        raise AsrKdError(f"cannot hold out validation utterances from {len(speaker_of)} utterance(s)")
    if stratify == "none":
        return fraction_of_ids(list(speaker_of), fraction, seed)
    by_speaker: dict[str, list[str]] = defaultdict(list)
    for utt, speaker in speaker_of.items():
        by_speaker[speaker].append(utt)
    speakers = sorted(by_speaker)
    if stratify == "held-out-speakers":
        return _held_out_speakers(by_speaker, max(1, round(fraction * len(speaker_of))), seed)
    quota = np.array([fraction * len(by_speaker[s]) for s in speakers])
    counts = np.floor(quota).astype(int)
    rng = np.random.default_rng(seed)  # one stream in a fixed order: reproducible from the set alone
    tie_break = rng.permutation(len(speakers))
    left = max(1, round(fraction * len(speaker_of))) - int(counts.sum())
    for i in sorted(range(len(speakers)), key=lambda i: (-(quota[i] - counts[i]), tie_break[i]))[:max(left, 0)]:
        counts[i] += 1
    chosen = []
    for speaker, count in zip(speakers, counts):
        utts = sorted(by_speaker[speaker])
        order = rng.permutation(len(utts))
        chosen += [utts[i] for i in order[:min(int(count), len(utts) - 1)]]
    return sorted(chosen)


def _held_out_speakers(by_speaker: Mapping[str, list[str]], wanted: int, seed: int) -> list[str]:
    """All utterances of whole speakers, in a seeded order, until ``wanted`` are held out (never every speaker)."""
    speakers = sorted(by_speaker)
    if len(speakers) < 2:
        raise AsrKdError(f"cannot hold out whole speakers: the utterances are of {len(speakers)} speaker(s)")
    chosen: list[str] = []
    for i in np.random.default_rng(seed).permutation(len(speakers))[:len(speakers) - 1]:
        if len(chosen) >= wanted:
            break
        chosen += by_speaker[speakers[i]]
    return sorted(chosen)


@dataclass(frozen=True)
class ValidationSplit:
    """A written split: its files and what they hold."""

    directory: Path
    valid: list[str]
    train: list[str]
    info: dict

    @property
    def valid_path(self) -> Path:
        return self.directory / VALID_FILE

    @property
    def train_path(self) -> Path:
        return self.directory / TRAIN_FILE


def write_split(exp: str | os.PathLike, subset: str, fraction: float = DEFAULT_FRACTION, seed: int = 0,
                stratify: str = "speaker", out: str | os.PathLike | None = None,
                utts: str | os.PathLike | None = None) -> tuple[ValidationSplit, bool]:
    """Hold out validation utterances of ``<exp>/manifests/<subset>.tsv``; returns ``(split, written)``.

    ``utts``: a file of utterance ids (:func:`read_listed_utts`): split only these. ``written`` is
    False when ``out`` already held this very split (reused). A split with other settings or of
    another utterance set is an :class:`AsrKdError`.
    """
    import json

    directory = Path(out) if out is not None else Experiment(exp).split_dir(subset)
    manifest = Experiment(exp).manifest(subset)
    utterances = read_manifest(manifest)
    if utts is not None:
        listed = set(read_listed_utts(utts, (u.utt_id for u in utterances), f"the manifest {manifest}"))
        utterances = [u for u in utterances if u.utt_id in listed]
    speaker_of = {u.utt_id: u.speaker for u in utterances}
    settings = {"subset": subset, "fraction": fraction, "seed": seed, "stratify": stratify,
                "subset_sha256": list_digest(speaker_of)}
    info_path = directory / SPLIT_FILE
    if info_path.exists():
        old = json.loads(info_path.read_text())
        if {k: old.get(k) for k in settings} != settings:
            raise AsrKdError(f"{info_path}: a validation split with other settings or of other utterances exists "
                             f"({ {k: old.get(k) for k in settings} }); every system of an experiment must use one "
                             "split: keep it, or delete the folder to start a new experiment")
        return ValidationSplit(directory, read_utt_list(directory / VALID_FILE),
                               read_utt_list(directory / TRAIN_FILE), old), False
    valid = choose_validation(speaker_of, fraction, seed, stratify)
    held = set(valid)
    train = sorted(u for u in speaker_of if u not in held)
    seconds = {u.utt_id: u.duration_s for u in utterances}
    per_speaker: dict[str, dict[str, int]] = defaultdict(lambda: {"train": 0, "valid": 0})
    for utt, speaker in speaker_of.items():
        per_speaker[speaker]["valid" if utt in held else "train"] += 1
    info = {**settings, "valid_sha256": list_digest(valid),
            "utterances": {"train": len(train), "valid": len(valid)},
            "hours": {"train": round(sum(seconds[u] for u in train) / 3600, 4),
                      "valid": round(sum(seconds[u] for u in valid) / 3600, 4)},
            "speakers": {"train": len({speaker_of[u] for u in train}), "valid": len({speaker_of[u] for u in valid})},
            "per_speaker": dict(sorted(per_speaker.items()))}
    for name, ids in ((VALID_FILE, valid), (TRAIN_FILE, train)):
        with atomic_open(directory / name) as f:
            f.writelines(u + "\n" for u in ids)
    write_json(info_path, info)  # last: its presence marks a complete split
    return ValidationSplit(directory, valid, train, info), True
