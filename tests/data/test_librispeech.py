import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_kd.data import read_manifest, scan_subset, select_fraction, summarize, write_manifest
from asr_kd.data.librispeech import read_speaker_genders
from asr_kd.utils.errors import AsrKdError

TRAIN = "train-clean-5"


@pytest.fixture
def corpus(tiny_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny corpus (train subset + SPEAKERS.TXT) to break in tests."""
    root = tmp_path / "LibriSpeech"
    shutil.copytree(tiny_root / TRAIN, root / TRAIN)
    shutil.copy(tiny_root / "SPEAKERS.TXT", root / "SPEAKERS.TXT")
    return root


def first_chapter(root: Path) -> tuple[Path, Path]:
    trans = sorted((root / TRAIN).glob("*/*/*.trans.txt"))[0]
    flac = sorted(trans.parent.glob("*.flac"))[0]
    return trans, flac


def test_scan_reads_every_utterance_with_metadata(tiny_root: Path) -> None:
    utts, report = scan_subset(tiny_root, TRAIN, progress=False)
    assert len(utts) == 20 and report.num_skipped == 0
    assert [u.utt_id for u in utts] == sorted(u.utt_id for u in utts)
    u = utts[0]
    spk, chap, _ = u.utt_id.split("-")
    assert (u.speaker, u.chapter) == (spk, chap)
    assert u.gender in {"F", "M"}
    info = sf.info(u.audio_path)
    assert u.num_samples == info.frames and u.duration_s == pytest.approx(info.frames / 16000, abs=1e-4)
    assert u.transcript == u.transcript.upper() and u.words
    assert len({u.speaker for u in utts}) >= 5


def test_speaker_genders_from_speakers_txt(tiny_root: Path) -> None:
    genders = read_speaker_genders(tiny_root)
    assert genders["19"] == "F" and genders["1272"] == "M"


def test_manifest_round_trip(tiny_root: Path, tmp_path: Path) -> None:
    utts, _ = scan_subset(tiny_root, TRAIN, progress=False)
    write_manifest(tmp_path / "m.tsv", utts)
    assert read_manifest(tmp_path / "m.tsv") == utts


def test_select_fraction_is_deterministic_and_order_free(tiny_root: Path) -> None:
    utts, _ = scan_subset(tiny_root, TRAIN, progress=False)
    a = select_fraction(utts, 0.25, seed=3)
    assert a == select_fraction(list(reversed(utts)), 0.25, seed=3)
    assert len(a) == 5 and a != select_fraction(utts, 0.25, seed=4)
    size = summarize(a)
    assert size.utterances == 5 and size.frames > 0 and size.hours > 0


@pytest.mark.parametrize("fraction", [0.0, 1.5])
def test_select_fraction_rejects_bad_fraction(tiny_root: Path, fraction: float) -> None:
    utts, _ = scan_subset(tiny_root, TRAIN, progress=False)
    with pytest.raises(AsrKdError, match="fraction"):
        select_fraction(utts, fraction)


def corrupt_audio(flac: Path) -> None:
    flac.write_bytes(b"not a flac file at all")


def truncate_audio(flac: Path) -> None:
    data = flac.read_bytes()
    flac.write_bytes(data[: len(data) // 3])


def wrong_rate(flac: Path) -> None:
    sf.write(flac, np.zeros(8000, dtype=np.float32), 8000)


def stereo(flac: Path) -> None:
    sf.write(flac, np.zeros((16000, 2), dtype=np.float32), 16000)


def empty_audio(flac: Path) -> None:
    sf.write(flac, np.zeros(0, dtype=np.float32), 16000, format="FLAC")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (corrupt_audio, "corrupt"),
        (wrong_rate, "sample rate 8000"),
        (stereo, "2 channels"),
        (empty_audio, "empty audio|corrupt"),
    ],
)
def test_bad_audio_is_named(corpus: Path, damage, message: str) -> None:
    _, flac = first_chapter(corpus)
    damage(flac)
    with pytest.raises(AsrKdError, match=message) as err:
        scan_subset(corpus, TRAIN, progress=False)
    assert flac.name in str(err.value)
    utts, report = scan_subset(corpus, TRAIN, skip_bad=True, progress=False)
    assert len(utts) == 19 and report.num_skipped == 1


def test_truncated_audio_is_caught_when_decoding(corpus: Path) -> None:
    from asr_kd.data.audio import read_audio

    _, flac = first_chapter(corpus)
    truncate_audio(flac)
    utts, _ = scan_subset(corpus, TRAIN, skip_bad=True, progress=False)
    utt = next((u for u in utts if u.utt_id == flac.stem), None)
    if utt is None:  # the header itself was unreadable: already skipped at scan time
        return
    with pytest.raises(AsrKdError, match=flac.name):
        read_audio(utt.audio_path, expected_samples=utt.num_samples)


def test_missing_transcript_file(corpus: Path) -> None:
    trans, _ = first_chapter(corpus)
    trans.unlink()
    with pytest.raises(AsrKdError, match=r"transcript file is missing") as err:
        scan_subset(corpus, TRAIN, progress=False)
    assert trans.name in str(err.value)


def test_empty_transcript(corpus: Path) -> None:
    trans, flac = first_chapter(corpus)
    lines = trans.read_text().splitlines()
    lines[0] = lines[0].split()[0]
    trans.write_text("\n".join(lines) + "\n")
    with pytest.raises(AsrKdError, match="empty transcript"):
        scan_subset(corpus, TRAIN, progress=False)
    _, report = scan_subset(corpus, TRAIN, skip_bad=True, progress=False)
    assert report.skipped == {"empty transcript": [flac.stem]}


def test_missing_audio_and_audio_without_transcript(corpus: Path) -> None:
    trans, flac = first_chapter(corpus)
    flac.rename(flac.with_name("9999-1-0001.flac"))
    with pytest.raises(AsrKdError, match="audio file is missing"):
        scan_subset(corpus, TRAIN, progress=False)
    _, report = scan_subset(corpus, TRAIN, skip_bad=True, progress=False)
    assert set(report.skipped) == {"missing audio", "audio without transcript"}


def test_duplicate_utterance_id(corpus: Path) -> None:
    trans, _ = first_chapter(corpus)
    first_line = trans.read_text().splitlines()[0]
    trans.write_text(trans.read_text() + first_line + "\n")
    with pytest.raises(AsrKdError, match="duplicate utterance id"):
        scan_subset(corpus, TRAIN, progress=False)


def test_non_utf8_transcript(corpus: Path) -> None:
    trans, _ = first_chapter(corpus)
    trans.write_bytes(trans.read_bytes() + b"19-198-9999 CAF\xe9\n")
    with pytest.raises(AsrKdError, match="not valid UTF-8") as err:
        scan_subset(corpus, TRAIN, progress=False)
    assert trans.name in str(err.value)


def test_missing_subset(tiny_root: Path) -> None:
    with pytest.raises(AsrKdError, match="train-other-500"):
        scan_subset(tiny_root, "train-other-500", progress=False)


def test_flac_of_unknown_length_gets_its_decoded_length(corpus: Path) -> None:
    """A FLAC header with total samples 0 ("unknown") must not become 2**63 - 1 samples (issue 14.5)."""
    from tests.test_bad_input import corrupt_middle, unknown_length

    _, flac = first_chapter(corpus)
    true_length = sf.info(flac).frames
    unknown_length(flac)
    utts, report = scan_subset(corpus, TRAIN, progress=False)
    utt = next(u for u in utts if u.utt_id == flac.stem)
    assert utt.num_samples == true_length and report.hours < 1
    corrupt_middle(flac)  # decoding errors still count when the length is unknown
    with pytest.raises(AsrKdError, match=f"{flac.name}: unreadable or corrupt audio"):
        scan_subset(corpus, TRAIN, progress=False)


def test_corrupt_audio_data_is_found_by_decoding_and_skipped(corpus: Path) -> None:
    """The header is intact, the audio frames are not: caught by prepare, not by features (issue 14.5)."""
    from tests.test_bad_input import corrupt_middle

    _, flac = first_chapter(corpus)
    corrupt_middle(flac)
    with pytest.raises(AsrKdError, match=f"{flac.name}: unreadable or corrupt audio"):
        scan_subset(corpus, TRAIN, progress=False)
    utts, report = scan_subset(corpus, TRAIN, skip_bad=True, progress=False, jobs=2)
    assert report.skipped == {"bad audio": [str(flac.resolve())]} and len(utts) == 19


def test_prepare_summary_counts_what_skip_bad_skipped(corpus: Path, tmp_path: Path) -> None:
    import json

    from asr_kd.cli import main
    from tests.test_bad_input import corrupt_middle, too_short

    flacs = sorted((corpus / TRAIN).glob("*/*/*.flac"))
    corrupt_middle(flacs[0])
    too_short(flacs[1])
    exp = tmp_path / "exp"
    assert main(["prepare", "--root", str(corpus), "--subsets", TRAIN, "--exp", str(exp), "--skip-bad"]) == 0
    summary = json.loads((exp / "manifests" / "summary.json").read_text())[TRAIN]
    assert summary["skipped"] == {"bad audio": 1, "audio too short": 1} and summary["utterances"] == 18
    assert summary["skipped_items"]["audio too short"] == [str(flacs[1].resolve())]


def test_utterance_ids_use_ascii_digits_only(tmp_path: Path) -> None:
    """``\\d`` also matches e.g. Arabic-Indic digits (issue 14.11)."""
    from asr_kd.data.librispeech import read_transcripts

    trans = tmp_path / "19-198.trans.txt"
    trans.write_text("19-198-0001 HELLO\n\u0661\u0669-198-0002 WORLD\n", encoding="utf-8")
    with pytest.raises(AsrKdError, match=r"19-198.trans.txt:2: malformed utterance id"):
        read_transcripts(trans)


def test_utterance_id_must_match_its_folder(corpus: Path) -> None:
    trans, flac = first_chapter(corpus)
    speaker, chapter, utt = flac.stem.split("-")
    stranger = f"{int(speaker) + 1}-{chapter}-{utt}"
    trans.write_text(trans.read_text().replace(flac.stem, stranger))
    flac.rename(flac.with_name(f"{stranger}.flac"))
    with pytest.raises(AsrKdError, match=f"utterance id {stranger} does not belong to its folder"):
        scan_subset(corpus, TRAIN, progress=False)
    _, report = scan_subset(corpus, TRAIN, skip_bad=True, progress=False)
    assert report.skipped["id not matching its folder"] == [stranger]
    assert set(report.skipped) == {"id not matching its folder", "audio without transcript"}
