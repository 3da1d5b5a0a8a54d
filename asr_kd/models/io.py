"""Model files: one call to build, save and load an acoustic model (or an ensemble).

A model file (``*.pt``) is a ``torch.save`` of plain containers, loadable with
``torch.load(weights_only=True)``::

    {"format": "asr_kd.model/1", "state_dict": {...}, "metadata": {...JSON-able...}}

``metadata`` holds at least ``arch``, ``config`` (constructor kwargs), ``num_senones``,
``feature`` (FbankConfig dict + ``cmvn_mode``) and ``context`` (``[left, right]`` frames, or
``null`` for whole-utterance models such as the conformer); trainers add what they like
(training subset, dev frame accuracy ...).

An ensemble file (``*.json``) lists member model files (relative to the JSON file) plus
``combine`` and ``temperature``; :func:`load` returns an :class:`Ensemble` for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asr_kd.models.conformer import ConformerAM
from asr_kd.models.dnn import DNN
from asr_kd.models.ensemble import Ensemble
from asr_kd.models.presets import preset
from asr_kd.utils.atomic import write_json, write_with
from asr_kd.utils.errors import AsrKdError

MODEL_FORMAT = "asr_kd.model/1"
ENSEMBLE_FORMAT = "asr_kd.ensemble/1"
ARCHS: dict[str, type[nn.Module]] = {"dnn": DNN, "conformer": ConformerAM}


def build(arch: str, preset_name: str | None = None, **config: Any) -> nn.Module:
    """Construct a model: ``build("dnn", "mini", input_dim=40, num_senones=1000)``.

    ``config`` overrides the preset's kwargs; without a preset all kwargs come from ``config``.
    """
    if arch not in ARCHS:
        raise AsrKdError(f"unknown model architecture {arch!r}; choose from {sorted(ARCHS)}")
    kwargs = preset(arch, preset_name) if preset_name else {}
    kwargs.update(config)
    try:
        return ARCHS[arch](**kwargs)
    except TypeError as err:
        raise AsrKdError(f"bad {arch} model configuration {kwargs}: {err}") from None


def save(path: str | os.PathLike, model: nn.Module, metadata: dict[str, Any] | None = None) -> None:
    """Atomically write ``model`` (weights + ``arch``/``config``/``num_senones``/``context``) and ``metadata``."""
    meta = dict(metadata or {})
    meta.update(arch=model.arch, config=dict(model.config), num_senones=int(model.num_senones),
                context=list(model.context) if model.context is not None else None)
    try:
        json.dumps(meta)
    except TypeError as err:
        raise ValueError(f"model metadata must be JSON-able: {err}") from None
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": MODEL_FORMAT, "state_dict": state, "metadata": meta}
    write_with(path, lambda tmp: torch.save(payload, tmp), suffix=".pt")


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a model file (or an ensemble JSON) -> ``(module in eval mode, metadata)``."""
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: model file does not exist")
    if path.suffix == ".json":
        return load_ensemble(path, map_location)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt or foreign file: name it
        raise AsrKdError(f"{path}: not a readable model file ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise AsrKdError(f"{path}: not an asr_kd model file (expected format {MODEL_FORMAT})")
    meta = payload["metadata"]
    model = build(meta["arch"], **meta["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location).eval(), meta


def save_ensemble(path: str | os.PathLike, members: list[str | os.PathLike], temperature: float = 1.0,
                  combine: str = "mean_prob") -> None:
    """Write an ensemble JSON referring to member model files (stored relative to ``path``)."""
    path = Path(path)
    rel = [os.path.relpath(Path(m).resolve(), path.parent.resolve()) for m in members]
    write_json(path, {"format": ENSEMBLE_FORMAT, "members": rel, "temperature": temperature, "combine": combine})


def load_ensemble(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                  temperature: float | None = None, combine: str | None = None) -> tuple[Ensemble, dict[str, Any]]:
    """Load an ensemble JSON; ``temperature``/``combine`` override the file's settings.

    The metadata is the first member's (feature config, senones) plus ``members`` (their
    metadata), ``arch = "ensemble"``, ``combine`` and ``temperature``.
    """
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
        members = [path.parent / m for m in spec["members"]]
    except (ValueError, KeyError, TypeError) as err:
        raise AsrKdError(f"{path}: not an asr_kd ensemble file ({err})") from None
    return ensemble_of(members, map_location,
                       spec.get("temperature", 1.0) if temperature is None else temperature,
                       spec.get("combine", "mean_prob") if combine is None else combine)


def ensemble_of(paths: list[str | os.PathLike], map_location: str | torch.device = "cpu",
                temperature: float = 1.0, combine: str = "mean_prob") -> tuple[Ensemble, dict[str, Any]]:
    """Load member model files into an :class:`Ensemble` -> ``(ensemble, metadata)``."""
    loaded = [load(p, map_location) for p in paths]
    features = {json.dumps(meta.get("feature"), sort_keys=True) for _, meta in loaded}
    if len(features) != 1:
        raise AsrKdError(f"ensemble members {[str(p) for p in paths]} were trained on different features")
    try:
        ensemble = Ensemble([m for m, _ in loaded], temperature, combine)
    except ValueError as err:
        raise AsrKdError(f"cannot combine {[str(p) for p in paths]}: {err}") from None
    meta = {k: v for k, v in loaded[0][1].items() if k in ("feature", "num_senones")}
    meta.update(arch="ensemble", temperature=temperature, combine=combine,
                members=[dict(m, path=str(p)) for (_, m), p in zip(loaded, paths)])
    return ensemble.eval(), meta
