"""Read a LibriSpeech root in the official layout.

Layout (any subset name: train-clean-100, dev-clean, Mini LibriSpeech's train-clean-5 ...)::

    <root>/SPEAKERS.TXT
    <root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

Every problem with the corpus is an :class:`AsrKdError` naming the file; with
``skip_bad=True`` problems of single utterances become counted skips instead, listed in the
:class:`ScanReport`. Every audio file is decoded in full (over a process pool): a corrupt or
truncated FLAC is found here, not halfway through feature extraction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from asr_kd.data.audio import SAMPLE_RATE, check_window, read_audio
from asr_kd.data.manifest import Utterance
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger
from asr_kd.utils.processes import worker_pool

log = get_logger("data")
#: ``<speaker>-<chapter>-<utterance>`` in ASCII digits (``\d`` would also match e.g. Arabic-Indic digits).
UTT_ID = re.compile(r"^[0-9]+-[0-9]+-[0-9]+$")
#: Files decoded per task of the validation pool.
AUDIO_CHUNK = 16


@dataclass
class ScanReport:
    """What a scan kept and skipped; ``skipped`` maps a reason to the affected files/ids."""

    subset: str
    num_utterances: int = 0
    hours: float = 0.0
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, what: str) -> None:
        self.skipped.setdefault(reason, []).append(what)

    @property
    def num_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())


def read_speaker_genders(root: str | os.PathLike) -> dict[str, str]:
    """Map speaker id -> "F"/"M" from ``SPEAKERS.TXT`` (empty if the file is absent)."""
    path = Path(root) / "SPEAKERS.TXT"
    if not path.exists():
        log.warning("%s is missing: speaker genders will be 'U'", path)
        return {}
    genders = {}
    for line in _read_text(path).splitlines():
        if line.startswith(";") or not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 2:
            genders[parts[0]] = parts[1]
    return genders


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise AsrKdError(f"{path}: not valid UTF-8 text (byte {err.start}: {err.reason})") from None


def read_transcripts(path: Path) -> dict[str, str]:
    """Parse a ``<spk>-<chap>.trans.txt``: ``UTTID WORD WORD ...`` per line.

    An utterance id without words maps to the empty string; the caller decides.
    """
    transcripts: dict[str, str] = {}
    for line_no, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        utt_id, _, text = line.strip().partition(" ")
        if not UTT_ID.match(utt_id):
            raise AsrKdError(f"{path}:{line_no}: malformed utterance id {utt_id!r}")
        if utt_id in transcripts:
            raise AsrKdError(f"{path}:{line_no}: duplicate utterance id {utt_id}")
        transcripts[utt_id] = " ".join(text.upper().split())
    return transcripts


def check_audio(path: str) -> tuple[int | None, str | None, str | None]:
    """Decode one file completely: ``(num_samples, None, None)`` or ``(None, skip reason, message)``."""
    try:
        samples = read_audio(path)
    except AsrKdError as err:
        return None, "bad audio", str(err)
    try:
        check_window(path, len(samples))
    except AsrKdError as err:
        return None, "audio too short", str(err)
    return len(samples), None, None


def _check_audio_files(paths: list[str], jobs: int, desc: str, progress: bool) -> list[tuple]:
    """:func:`check_audio` of every path (in order), over up to ``jobs`` processes."""
    workers = min(jobs, -(-len(paths) // AUDIO_CHUNK))
    results = []
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=len(paths), desc=desc, unit="file", disable=not progress))
        if workers > 1:
            checked = stack.enter_context(worker_pool(workers)).map(check_audio, paths, chunksize=AUDIO_CHUNK)
        else:
            checked = map(check_audio, paths)
        for result in checked:
            results.append(result)
            bar.update()
    return results


def scan_subset(
    root: str | os.PathLike, subset: str, skip_bad: bool = False, progress: bool = True, jobs: int = 1
) -> tuple[list[Utterance], ScanReport]:
    """List the utterances of ``<root>/<subset>`` sorted by id, validating every file.

    Args:
        root: LibriSpeech root (the directory holding SPEAKERS.TXT and the subset folders).
        subset: subset folder name, e.g. ``train-clean-100`` or ``dev-clean-2``.
        skip_bad: skip (and count) bad utterances instead of raising.
        progress: show tqdm bars over chapters and audio files.
        jobs: processes decoding the audio files.
    """
    root = Path(root)
    subset_dir = root / subset
    if not subset_dir.is_dir():
        raise AsrKdError(f"{subset_dir}: subset directory not found under LibriSpeech root {root}")
    genders = read_speaker_genders(root)
    report = ScanReport(subset)
    chapters = sorted(p for p in subset_dir.glob("*/*") if p.is_dir())
    if not chapters:
        raise AsrKdError(f"{subset_dir}: no <speaker>/<chapter> folders found")

    def bad(reason: str, what: str, message: str) -> None:
        if not skip_bad:
            raise AsrKdError(message)
        report.skip(reason, what)

    # the text side of every chapter first (cheap), then the audio of the utterances kept
    found: dict[str, Utterance] = {}
    for chapter_dir in tqdm(chapters, desc=f"scan {subset}", unit="chapter", disable=not progress):
        speaker, chapter = chapter_dir.parent.name, chapter_dir.name
        trans_path = chapter_dir / f"{speaker}-{chapter}.trans.txt"
        flacs = {p.stem: p for p in chapter_dir.glob("*.flac")}
        if not trans_path.exists():
            bad("missing trans.txt", str(trans_path), f"{trans_path}: transcript file is missing")
            continue
        for utt_id, text in read_transcripts(trans_path).items():
            if not utt_id.startswith(f"{speaker}-{chapter}-"):
                bad("id not matching its folder", utt_id, f"{trans_path}: utterance id {utt_id} does not belong "
                    f"to its folder (speaker {speaker}, chapter {chapter})")
                continue
            if utt_id in found:
                bad("duplicate id", utt_id, f"{trans_path}: utterance id {utt_id} also appears in another chapter")
                continue
            audio_path = flacs.pop(utt_id, None)
            if not text:
                bad("empty transcript", utt_id, f"{trans_path}: utterance {utt_id} has an empty transcript")
                continue
            if audio_path is None:
                bad("missing audio", utt_id, f"{chapter_dir / (utt_id + '.flac')}: audio file is missing")
                continue
            found[utt_id] = Utterance(utt_id=utt_id, audio_path=str(audio_path.resolve()), num_samples=0,
                                      duration_s=0.0, speaker=speaker, gender=genders.get(speaker, "U"),
                                      chapter=chapter, transcript=text)
        for audio_path in flacs.values():
            bad("audio without transcript", str(audio_path), f"{audio_path}: no transcript line in {trans_path}")
    candidates = sorted(found.values(), key=lambda u: u.utt_id)
    checked = _check_audio_files([u.audio_path for u in candidates], jobs, f"decode {subset}", progress)
    result = []
    for utt, (num_samples, reason, message) in zip(candidates, checked):
        if num_samples is None:
            bad(reason, utt.audio_path, message)
            continue
        result.append(dataclasses.replace(utt, num_samples=num_samples,
                                          duration_s=round(num_samples / SAMPLE_RATE, 4)))
    if not result:
        raise AsrKdError(f"{subset_dir}: no usable utterances")
    report.num_utterances = len(result)
    report.hours = sum(u.duration_s for u in result) / 3600
    return result, report


def parse_subset_spec(spec: str) -> tuple[str, list[str]]:
    """Split a ``prepare --subsets`` entry into the manifest name and the folders it unites.

    ``"dev-clean"`` -> ``("dev-clean", ["dev-clean"])``;
    ``"train-960=train-clean-100+train-clean-360+train-other-500"`` ->
    ``("train-960", ["train-clean-100", "train-clean-360", "train-other-500"])``.
    """
    name, sep, rest = spec.partition("=")
    parts = rest.split("+") if sep else [name]
    if not name or "/" in name or any(not p or "/" in p or "=" in p for p in parts):
        raise AsrKdError(f"subset {spec!r}: expected SUBSET or NAME=PART+PART+... (folder names, no '/')")
    repeated = sorted({p for p in parts if parts.count(p) > 1})
    if repeated:
        raise AsrKdError(f"subset {spec!r}: part(s) listed more than once: {', '.join(repeated)}")
    return name, parts


def parse_subset_specs(specs: list[str]) -> dict[str, list[str]]:
    """Parse every ``prepare --subsets`` entry: manifest name -> its parts (names must be unique)."""
    parsed = [parse_subset_spec(spec) for spec in specs]
    names = [name for name, _ in parsed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AsrKdError(f"--subsets: manifest name(s) given more than once: {', '.join(repeated)}")
    return dict(parsed)


def scan_union(
    root: str | os.PathLike, name: str, parts: list[str], skip_bad: bool = False, progress: bool = True,
    jobs: int = 1,
) -> tuple[list[Utterance], ScanReport]:
    """Scan several subset folders as one subset called ``name`` (e.g. LibriSpeech's 960 h).

    Each part is read by :func:`scan_subset`; the result is sorted by utterance id. An
    utterance id found in two parts is an error naming the ids and parts, even with
    ``skip_bad`` (the union would be ambiguous).
    """
    report = ScanReport(name)
    owner: dict[str, str] = {}
    duplicates: list[str] = []
    utterances: list[Utterance] = []
    for part in parts:
        utts, scan = scan_subset(root, part, skip_bad=skip_bad, progress=progress, jobs=jobs)
        for u in utts:
            if u.utt_id in owner:
                duplicates.append(f"{u.utt_id} ({owner[u.utt_id]}, {part})")
            owner.setdefault(u.utt_id, part)
        utterances.extend(utts)
        for reason, items in scan.skipped.items():
            report.skipped.setdefault(reason, []).extend(items)
    if duplicates:
        shown = ", ".join(duplicates[:5]) + (f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else "")
        raise AsrKdError(f"subset {name} = {'+'.join(parts)}: {len(duplicates)} utterance id(s) in more "
                         f"than one part: {shown}")
    utterances.sort(key=lambda u: u.utt_id)
    report.num_utterances = len(utterances)
    report.hours = sum(u.duration_s for u in utterances) / 3600
    return utterances, report
