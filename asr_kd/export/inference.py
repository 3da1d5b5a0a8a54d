"""Senone posteriors for one audio file: the whole input pipeline of an exported model."""

from __future__ import annotations

import os

import numpy as np
import torch

from asr_kd.export.bundle import Bundle, load_bundle
from asr_kd.features.cmvn import CmvnStats
from asr_kd.features.fbank import fbank_of_file
from asr_kd.models import Ensemble, log_posteriors


def audio_features(bundle: Bundle, audio_path: str | os.PathLike, cmvn: str = "auto",
                   speaker: CmvnStats | None = None) -> np.ndarray:
    """``(T, D)`` float32 model input for a 16 kHz mono file: fbank of the bundle's config + CMVN.

    ``T`` = number of 10 ms frames (Kaldi framing, 25 ms windows, edges snipped). ``cmvn`` and
    ``speaker``: see :meth:`Bundle.normalize` (default: what the model was trained with, the
    utterance's own statistics standing in for its speaker's).
    """
    return bundle.normalize(fbank_of_file(audio_path, bundle.fbank), cmvn, speaker)


@torch.no_grad()
def posteriors_for_audio(bundle_or_path: Bundle | str | os.PathLike, audio_path: str | os.PathLike,
                         temperature: float = 1.0, cmvn: str = "auto",
                         speaker: CmvnStats | None = None) -> np.ndarray:
    """Frame senone log-posteriors of one audio file (FLAC/WAV, 16 kHz mono).

    Args:
        bundle_or_path: a :class:`Bundle`, a folder written by ``asr-kd export``, or a trained
            model file / ensemble JSON (see :func:`load_bundle`).
        audio_path: the audio file.
        temperature: softmax temperature (1 = the model's posteriors); an ensemble tempers
            each member before combining, as for distillation targets.
        cmvn, speaker: the input normalisation (:meth:`Bundle.normalize`).

    Returns:
        ``(T, num_senones)`` float32 ``log p(senone | frame)``, one row per 10 ms frame.
    """
    bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
    feats = torch.from_numpy(audio_features(bundle, audio_path, cmvn, speaker))[None]  # (1, T, D)
    model = bundle.model
    if isinstance(model, Ensemble):
        model.temperature, temperature = temperature, 1.0
    return log_posteriors(model, feats, torch.tensor([feats.shape[1]]), temperature)[0].numpy()
