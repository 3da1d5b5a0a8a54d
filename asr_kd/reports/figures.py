"""Figures of an experiment directory: one utterance through the models, posterior entropy vs T.

These read ``<exp>/feats``, ``<exp>/ali`` and ``<exp>/tree`` and model files, run the models
and hand the arrays to :mod:`asr_kd.reports.plots`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from asr_kd.experiment import Experiment
from asr_kd.reports.plots import plot_entropy_curves, plot_utterance
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.errors import AsrKdError


def _log_posteriors(model_path: str | os.PathLike, feature_dir: Path, utt_ids: Sequence[str],
                    temperatures: Sequence[float] = (1.0,), tree_path: Path | None = None) -> list[np.ndarray]:
    """Per temperature, ``(sum of T, S)`` float64 log-posteriors of ``utt_ids`` concatenated.

    An ensemble is tempered the way distillation does it: members' ``softmax(z / T)`` averaged.
    ``tree_path``: a tree whose senone names will label the posteriors (checked to fit).
    """
    from asr_kd.models import Ensemble, load_model, log_posteriors

    loaded = load_model(model_path)
    model, features = loaded.model, loaded.open_features(feature_dir)
    if tree_path is not None:
        loaded.check_tree(tree_path)
    out = []
    with torch.no_grad():
        for t in temperatures:
            if isinstance(model, Ensemble):
                model.temperature = t
            rows = []
            for utt_id in utt_ids:
                x = torch.from_numpy(features[utt_id])[None]
                lengths = torch.tensor([x.shape[1]])
                rows.append(log_posteriors(model, x, lengths, 1.0 if isinstance(model, Ensemble) else t)[0])
            out.append(torch.cat(rows).double().numpy())
    return out


def _senone_names(exp: Experiment) -> dict[int, str] | None:
    tree_path = exp.tree_json
    if not tree_path.exists():
        return None
    from asr_kd.alignment import SenoneTree

    tree = SenoneTree.load(tree_path)
    infos = (tree.senone_info(s) for s in range(tree.num_senones))
    return {s: f"{info['phone']}_{info['state']}" for s, info in enumerate(infos)}


def utterance_figure(exp: str | os.PathLike, subset: str, models: Mapping[str, str | os.PathLike],
                     out_path: str | os.PathLike, utt_id: str | None = None, max_seconds: float | None = None,
                     top_k: int = 6) -> Path:
    """Spectrogram + phone alignment + each model's posteriors for one utterance of ``<exp>/feats/<subset>``.

    Args:
        models: ``{label: model file or ensemble JSON}``, e.g. ``{"teacher": ..., "student": ...}``.
        utt_id: default: the first aligned utterance (else the first one with features).
        max_seconds: plot only the first seconds (long utterances get unreadable).
    """
    from asr_kd.alignment.outputs import read_ctm

    exp = Experiment(exp)
    feature_dir = exp.feats_dir(subset)
    store = ArrayStore(feature_dir)
    ctm_path = exp.phones_ctm(subset)
    alignment = read_ctm(ctm_path) if ctm_path.exists() else {}
    utt_id = utt_id or (min(alignment) if alignment else min(store.keys()))
    if utt_id not in store:
        raise AsrKdError(f"{feature_dir}: no utterance {utt_id!r}")
    fbank = store.meta.get("fbank", {})
    shift_s = fbank.get("frame_shift_ms", 10.0) / 1000
    frames = len(store[utt_id]) if max_seconds is None else min(len(store[utt_id]), int(max_seconds / shift_s))
    end_s = frames * shift_s
    segments = [(label, start, min(end, end_s)) for label, start, end in alignment.get(utt_id, []) if start < end_s]
    tree_path = exp.tree_json if exp.tree_json.exists() else None
    posteriors = {label: _log_posteriors(path, feature_dir, [utt_id], tree_path=tree_path)[0][:frames]
                  for label, path in models.items()}
    nyquist = fbank.get("sample_rate", 16000) / 2
    high = fbank.get("high_freq", 0.0)
    return plot_utterance(store[utt_id][:frames], out_path, segments, posteriors, top_k=top_k,
                          senone_names=_senone_names(exp), frame_shift_s=shift_s, low_freq=fbank.get("low_freq", 20.0),
                          high_freq=high if high > 0 else nyquist + high,
                          title=f"{utt_id} ({subset}{f', first {end_s:g} s' if max_seconds else ''})")


def entropy_figure(exp: str | os.PathLike, subset: str, models: Mapping[str, str | os.PathLike],
                   out_path: str | os.PathLike, temperatures: Sequence[float] = (1, 2, 5, 10, 20),
                   max_utts: int = 5) -> Path:
    """Posterior entropy vs temperature of each model over the first ``max_utts`` utterances of a subset."""
    feature_dir = Experiment(exp).feats_dir(subset)
    utt_ids = sorted(ArrayStore(feature_dir).keys())[:max_utts]
    entropies, num_senones = {}, 0
    for label, path in models.items():
        per_t = _log_posteriors(path, feature_dir, utt_ids, temperatures)
        entropies[label] = np.stack([-(np.exp(lp) * lp).sum(axis=1) for lp in per_t])
        num_senones = per_t[0].shape[1]
    frames = entropies[next(iter(entropies))].shape[1]
    return plot_entropy_curves(entropies, temperatures, num_senones, out_path,
                               title=f"{subset}: {len(utt_ids)} utterances, {frames} frames")
