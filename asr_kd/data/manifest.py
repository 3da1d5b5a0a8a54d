"""Per-subset utterance manifests (one TSV row per utterance)."""

from __future__ import annotations

import csv
import os
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from asr_kd.utils.atomic import atomic_open
from asr_kd.utils.errors import AsrKdError


@dataclass(frozen=True)
class Utterance:
    """One utterance of a corpus.

    Attributes:
        utt_id: ``<speaker>-<chapter>-<index>`` in LibriSpeech.
        audio_path: absolute path of the audio file.
        num_samples: audio length in samples (at 16 kHz).
        duration_s: audio length in seconds.
        speaker, gender ("F"/"M", "U" if SPEAKERS.TXT does not list the speaker), chapter.
        transcript: upper-case words separated by single spaces.
    """

    utt_id: str
    audio_path: str
    num_samples: int
    duration_s: float
    speaker: str
    gender: str
    chapter: str
    transcript: str

    @property
    def words(self) -> list[str]:
        return self.transcript.split()


COLUMNS = [f.name for f in fields(Utterance)]


def write_manifest(path: str | os.PathLike, utterances: list[Utterance]) -> None:
    """Atomically write ``utterances`` as a TSV with a header row."""
    with atomic_open(path) as f:
        f.write("\t".join(COLUMNS) + "\n")
        for utt in utterances:
            f.write("\t".join(str(v) for v in astuple(utt)) + "\n")


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a manifest written by :func:`write_manifest`."""
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: manifest is missing (run `asr-kd prepare` first)")
    utterances = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != COLUMNS:
            raise AsrKdError(f"{path}: not an asr_kd manifest (header {header}, expected {COLUMNS})")
        for line_no, row in enumerate(reader, start=2):
            if len(row) != len(COLUMNS):
                raise AsrKdError(f"{path}:{line_no}: expected {len(COLUMNS)} columns, got {len(row)}")
            utt_id, audio_path, num_samples, duration_s, speaker, gender, chapter, transcript = row
            utterances.append(
                Utterance(utt_id, audio_path, int(num_samples), float(duration_s), speaker, gender, chapter, transcript)
            )
    return utterances

