"""Model files: one call to build, save and load an acoustic model (or an ensemble).

A model file (``*.pt``) is a ``torch.save`` of plain containers, loadable with
``torch.load(weights_only=True)``::

    {"format": "asr_kd.model/1", "state_dict": {...}, "metadata": {...JSON-able...},
     "sha256": "<hex digest of the metadata and every tensor>"}

:func:`load` recomputes ``sha256`` (:func:`weights_digest`) and refuses a file whose weights
or metadata changed since :func:`save` wrote it (a damaged copy would otherwise load and give
wrong posteriors silently), and refuses NaN/Inf weights. Files written before the checksum
existed carry no ``sha256``: they load unverified, with one warning per file.

``metadata`` holds at least ``arch``, ``config`` (constructor kwargs), ``num_senones``,
``feature`` (FbankConfig dict + ``cmvn_mode``) and ``context`` (``[left, right]`` frames, or
``null`` for whole-utterance models such as the conformer); trainers add what they like
(training subset, dev frame accuracy ...).

An ensemble file (``*.json``) lists member model files (relative to the JSON file) plus
``combine`` and ``temperature``; :func:`load` returns an :class:`Ensemble` for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
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
from asr_kd.utils.logging import get_logger

log = get_logger("models")
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
    payload = {"format": MODEL_FORMAT, "state_dict": state, "metadata": meta, "sha256": weights_digest(state, meta)}
    write_with(path, lambda tmp: torch.save(payload, tmp), suffix=".pt")


def weights_digest(state_dict: dict[str, torch.Tensor], metadata: dict[str, Any]) -> str:
    """SHA-256 of a model's metadata (canonical JSON) and of every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def read_payload(path: str | os.PathLike, what: str = "model file",
                 map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` whose failures are one :class:`AsrKdError` line naming the file.

    PyTorch's own message for a file holding other Python objects is several lines long and
    suggests ``weights_only=False``, which would run code from the file: never do that for a
    file that is not ours.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise AsrKdError(f"{path}: not a loadable {what}: damaged, or it holds Python objects besides tensors and "
                         "plain containers (not loaded: unpickling those could run code from the file)") from None
    except Exception as err:  # a damaged or foreign file: torch raises RuntimeError, EOFError, zip errors ...
        detail = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise AsrKdError(f"{path}: not a readable {what} ({detail[:200]})") from None


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a model file (or an ensemble JSON) -> ``(module in eval mode, metadata)``.

    Raises:
        AsrKdError: missing, unreadable or foreign file, weights or metadata that do not match
            the file's checksum (damaged file), NaN/Inf weights, weights that do not fit the
            recorded architecture.
    """
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: model file does not exist")
    if path.suffix == ".json":
        return load_ensemble(path, map_location)
    payload = read_payload(path, "model file")
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise AsrKdError(f"{path}: not an asr_kd model file (expected format {MODEL_FORMAT})")
    meta, state = payload["metadata"], payload["state_dict"]
    _verify(path, state, meta, payload.get("sha256"))
    model = build(meta["arch"], **meta["config"])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise AsrKdError(f"{path}: weights do not fit a {meta['arch']} model of its recorded configuration "
                         f"({str(err).splitlines()[0]})") from None
    return model.to(map_location).eval(), meta


_UNVERIFIED_WARNED: set[str] = set()


def non_finite_weights(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or Inf.

    A finite sum proves a tensor finite (NaN and Inf propagate into it) at a tenth of the cost
    of an element-wise test, which only runs when the sum is not finite (overflow or a bad value).
    """
    return [name for name, t in state_dict.items() if t.is_floating_point() and not bool(torch.isfinite(t.sum()))
            and not bool(torch.isfinite(t).all())]


def _verify(path: Path, state: dict[str, torch.Tensor], meta: dict[str, Any], recorded: str | None) -> None:
    """Check the file's checksum (if it has one) and that every weight is finite."""
    if recorded is None:
        if str(path) not in _UNVERIFIED_WARNED:
            _UNVERIFIED_WARNED.add(str(path))
            log.warning("%s: written before asr_kd model files carried a checksum: loaded without an integrity "
                        "check", path)
    elif weights_digest(state, meta) != recorded:
        raise AsrKdError(f"{path}: damaged model file: its weights or metadata do not match the checksum written "
                         "with them (restore the file from a good copy, or retrain)")
    bad = non_finite_weights(state)
    if bad:
        raise AsrKdError(f"{path}: NaN/Inf in the weights ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}): "
                         "the model diverged or the file is damaged")


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
