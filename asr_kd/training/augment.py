"""Training-input augmentation: SpecAugment-style masks and Gaussian noise on normalised features.

SpecAugment (Park et al. 2019) masks random bands of mel bins and random runs of frames; on a
frame-level DNN the "utterance" is the model's context window, so a time mask blanks frames of
the window. The masks are drawn independently per example (per window, or per utterance of a
conformer batch) by :func:`torchaudio.functional.mask_along_axis_iid`; masked values are set
to 0, the mean of CMVN-normalised features. Noise is added in the same normalised units (a
standard deviation of 1 is the features' own spread under ``speaker`` or ``global`` CMVN).

The trainer augments only training batches (validation and evaluation see clean features)
and draws from torch's global generator, which it reseeds every step: an augmented run is as
reproducible and resumable as a clean one. An online teacher
(:class:`~asr_kd.distillation.teacher_objectives.OnlineTeacherObjective`) labels the *same*
augmented inputs the student sees ("consistent" teaching, Beyer et al. 2022); a teacher store
was dumped from clean features, so with a store the student learns clean-input targets from
augmented inputs.
"""

from __future__ import annotations

import torch
from torchaudio.functional import mask_along_axis_iid

from asr_kd.training.config import AugmentConfig

#: ``batch`` key set on an augmented batch (an online teacher then reads ``batch["inputs"]``).
AUGMENTED_KEY = "augmented"


def augment_features(feats: torch.Tensor, config: AugmentConfig) -> torch.Tensor:
    """Masked and noised copy of ``feats``.

    Args:
        feats: ``(N, L, D)`` float features: N context windows of L frames (DNN) or N padded
            utterances of L frames (conformer), D mel bins, CMVN-normalised.
        config: how many masks of which maximum width (mel bins, frames), and the noise std.

    Returns:
        ``(N, L, D)``: each example with ``config.freq_masks`` bands of 0..``freq_width`` bins
        and ``config.time_masks`` runs of 0..``time_width`` frames set to 0, then
        ``noise_std`` x N(0, 1) added everywhere.
    """
    out = feats.transpose(1, 2)  # (N, D, L): mask_along_axis_iid masks per leading index
    # a width above the axis would let a mask start before index 0: at most the whole axis
    freq_width, time_width = min(config.freq_width, out.shape[1]), min(config.time_width, out.shape[2])
    for _ in range(config.freq_masks):
        out = mask_along_axis_iid(out, freq_width, 0.0, axis=1)
    for _ in range(config.time_masks):
        out = mask_along_axis_iid(out, time_width, 0.0, axis=2)
    out = out.transpose(1, 2)
    if config.noise_std > 0:
        out = out + config.noise_std * torch.randn_like(out)
    return out.contiguous()


def augment_batch(batch: dict, config: AugmentConfig) -> dict:
    """The batch with augmented ``inputs`` (a ``(N, L, D)`` tensor, or ``(feats, lengths)``) and
    :data:`AUGMENTED_KEY` set; every other key (targets, frame indices, masks) is unchanged."""
    inputs = batch["inputs"]
    if isinstance(inputs, tuple):  # utterance batches: (padded feats (B, T, D), lengths (B,))
        feats, lengths = inputs
        augmented = (augment_features(feats, config), lengths)
    else:
        augmented = augment_features(inputs, config)
    return {**batch, "inputs": augmented, AUGMENTED_KEY: True}
