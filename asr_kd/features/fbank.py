"""Log-mel filterbank features (torchaudio's Kaldi-compatible implementation)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torchaudio.compliance import kaldi

from asr_kd.data.audio import SAMPLE_RATE, check_window, num_frames, read_audio
from asr_kd.utils.errors import AsrKdError

#: Kaldi computes features on 16-bit integer sample values; soundfile gives [-1, 1].
INT16_SCALE = 32768.0


@dataclass(frozen=True)
class FbankConfig:
    """Log-mel filterbank settings (Kaldi ``compute-fbank-feats`` semantics).

    Attributes:
        num_mel_bins: filterbank channels (paper: 40).
        frame_length_ms: analysis window in milliseconds.
        frame_shift_ms: hop between frames in milliseconds (one target per shift).
        low_freq, high_freq: filterbank edges in Hz (``high_freq <= 0`` is relative to Nyquist).
        dither: 0 keeps features deterministic.
    """

    num_mel_bins: int = 40
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = 20.0
    high_freq: float = 0.0
    dither: float = 0.0
    sample_rate: int = SAMPLE_RATE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> FbankConfig:
        """The config recorded as ``settings`` (a feature store's or model's ``fbank`` entry).

        Keys this version does not know are ignored and missing ones take their defaults, so
        a record written before a setting existed reads as that setting's default.
        """
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names})


def compute_fbank(samples: np.ndarray | torch.Tensor, config: FbankConfig = FbankConfig()) -> torch.Tensor:
    """Log-mel filterbank energies of one utterance.

    Args:
        samples: ``(num_samples,)`` float waveform in [-1, 1] at ``config.sample_rate`` Hz.

    Returns:
        ``(num_frames, num_mel_bins)`` float32, ``num_frames = 1 + (num_samples - window) // shift``.
    """
    waveform = torch.as_tensor(samples, dtype=torch.float32).reshape(1, -1) * INT16_SCALE
    return kaldi.fbank(
        waveform,
        num_mel_bins=config.num_mel_bins,
        frame_length=config.frame_length_ms,
        frame_shift=config.frame_shift_ms,
        low_freq=config.low_freq,
        high_freq=config.high_freq,
        dither=config.dither,
        sample_frequency=config.sample_rate,
        energy_floor=0.0,
    )


def fbank_of_file(path: str | os.PathLike, config: FbankConfig = FbankConfig(),
                  expected_samples: int | None = None) -> np.ndarray:
    """Read one audio file and return its ``(num_frames, num_mel_bins)`` float32 log-mel features.

    ``expected_samples`` (from the manifest) catches files changed since ``asr-kd prepare``.

    Raises:
        AsrKdError: naming the file: unreadable audio (see :func:`~asr_kd.data.audio.read_audio`),
            audio shorter than one analysis window, or non-finite features.
    """
    samples = read_audio(path, config.sample_rate, expected_samples=expected_samples)
    check_window(path, len(samples), config.frame_length_ms, config.sample_rate)
    expected = num_frames(len(samples), config.frame_length_ms, config.frame_shift_ms, config.sample_rate)
    feats = compute_fbank(samples, config).numpy()
    if feats.shape[0] != expected:
        raise AsrKdError(f"{path}: {feats.shape[0]} feature frames, expected {expected}")
    if not np.isfinite(feats).all():
        raise AsrKdError(f"{path}: features contain NaN/Inf")
    return feats
