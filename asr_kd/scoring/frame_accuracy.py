"""Frame accuracy of a model (or ensemble) against a forced alignment, overall and per phone class.

A frame is correct when the argmax senone equals the aligned senone. Frames whose aligned
phone (the ``<exp>/ali/<subset>/phones`` store) is a silence phone (``SIL``, ``SPN``) are reported
separately from speech frames, since silence is both frequent and easy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from asr_kd.data.lexicon import PHONES, SILENCE, SPOKEN_NOISE
from asr_kd.experiment import PHONES_DIR, SENONES_DIR, Experiment
from asr_kd.features.dataset import FeatureSet, check_aligned
from asr_kd.models.inference import utterance_log_posteriors
from asr_kd.models.loader import check_targets_fit
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.errors import AsrKdError

SILENCE_PHONE_IDS = (PHONES.index(SILENCE), PHONES.index(SPOKEN_NOISE))


@dataclass
class FrameAccuracy:
    """Counts of correct frames, overall and on silence frames."""

    correct: int = 0
    frames: int = 0
    silence_correct: int = 0
    silence_frames: int = 0

    def update(self, predicted: torch.Tensor, target: torch.Tensor, silence: torch.Tensor | None = None) -> None:
        """Add ``(T,)`` predicted and target senones; ``silence`` ``(T,)`` bool marks silence frames."""
        hit = predicted == target
        self.correct += int(hit.sum())
        self.frames += len(target)
        if silence is not None:
            self.silence_correct += int(hit[silence].sum())
            self.silence_frames += int(silence.sum())

    def to_dict(self) -> dict:
        """``frame_acc`` and ``frames``, plus ``silence``/``nonsilence`` parts (``null`` accuracy if no frames)."""

        def acc(c: int, n: int) -> float | None:
            return c / n if n else None

        speech_correct, speech_frames = self.correct - self.silence_correct, self.frames - self.silence_frames
        return {"frame_acc": acc(self.correct, self.frames), "frames": self.frames,
                "silence": {"frame_acc": acc(self.silence_correct, self.silence_frames),
                            "frames": self.silence_frames},
                "nonsilence": {"frame_acc": acc(speech_correct, speech_frames), "frames": speech_frames}}


def frame_accuracy(model: nn.Module, features: FeatureSet, senones: ArrayStore, phones: ArrayStore | None = None,
                   utt_ids: Sequence[str] | None = None, device: str | torch.device = "cpu",
                   max_frames: int = 20000) -> dict:
    """Score ``model`` on ``utt_ids`` (default: every utterance that has senone targets).

    Returns :meth:`FrameAccuracy.to_dict` plus ``utterances``; the silence split needs ``phones``.
    """
    check_targets_fit(int(model.num_senones), type(model).__name__, senones)
    ids = list(utt_ids) if utt_ids is not None else [u for u in features.utt_ids() if u in senones]
    if not ids:
        raise AsrKdError(f"no utterance of {features.dir} has targets in {senones.root}")
    counts = FrameAccuracy()
    for utt_id, log_post in utterance_log_posteriors(model, features, ids, device, max_frames):
        target = torch.from_numpy(senones[utt_id].astype("int64"))
        check_aligned(utt_id, log_post, target, str(senones.root))
        silence = None
        if phones is not None:
            phone = torch.from_numpy(phones[utt_id].astype("int64"))
            check_aligned(utt_id, log_post, phone, str(phones.root))
            silence = torch.isin(phone, torch.tensor(SILENCE_PHONE_IDS))
        counts.update(log_post.argmax(-1), target, silence)
    return dict(counts.to_dict(), utterances=len(ids))


def alignment_stores(exp: str | os.PathLike, subset: str) -> tuple[ArrayStore, ArrayStore | None]:
    """``<exp>/ali/<subset>``'s senone store and its phone store (None if absent)."""
    phones = Experiment(exp).targets_dir(subset, PHONES_DIR)
    return ArrayStore(Experiment(exp).targets_dir(subset, SENONES_DIR)), ArrayStore(phones) if phones.exists() else None

