"""Audio reading with the checks a corpus needs (soundfile does the decoding)."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from asr_kd.utils.errors import AsrKdError

SAMPLE_RATE = 16000


def audio_info(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> int:
    """Validate an audio file's header and return its length in samples.

    Raises:
        AsrKdError: missing/unreadable file, wrong sample rate, not mono, or empty audio.
    """
    try:
        info = sf.info(str(path))
    except FileNotFoundError:
        raise AsrKdError(f"{path}: audio file is missing") from None
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AsrKdError(f"{path}: unreadable or corrupt audio ({err})") from None
    if info.samplerate != sample_rate:
        raise AsrKdError(f"{path}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
    if info.channels != 1:
        raise AsrKdError(f"{path}: {info.channels} channels, expected mono")
    if info.frames <= 0:
        raise AsrKdError(f"{path}: empty audio (0 samples)")
    return int(info.frames)


def read_audio(
    path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, expected_samples: int | None = None
) -> np.ndarray:
    """Read a mono file as float32 samples in [-1, 1], shape ``(num_samples,)``.

    ``expected_samples`` (from the manifest) catches truncated files whose header still
    claims the original length.
    """
    try:
        samples, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise AsrKdError(f"{path}: audio file is missing") from None
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AsrKdError(f"{path}: unreadable or corrupt audio ({err})") from None
    if file_rate != sample_rate:
        raise AsrKdError(f"{path}: sample rate {file_rate} Hz, expected {sample_rate} Hz")
    if samples.shape[1] != 1:
        raise AsrKdError(f"{path}: {samples.shape[1]} channels, expected mono")
    if samples.shape[0] == 0:
        raise AsrKdError(f"{path}: empty audio (0 samples)")
    if expected_samples is not None and samples.shape[0] != expected_samples:
        raise AsrKdError(
            f"{path}: decoded {samples.shape[0]} samples but the manifest says {expected_samples} "
            "(truncated or changed file)"
        )
    if not np.isfinite(samples).all():
        raise AsrKdError(f"{path}: audio contains NaN or Inf samples")
    return samples[:, 0]


def num_frames(num_samples: int, frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0,
               sample_rate: int = SAMPLE_RATE) -> int:
    """Frames Kaldi-style framing (``snip_edges=True``) gives ``num_samples`` samples."""
    window = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    return 0 if num_samples < window else 1 + (num_samples - window) // shift
