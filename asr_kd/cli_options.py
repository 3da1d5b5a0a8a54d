"""The options the ``asr-kd`` commands share, each declared once with one default.

Commands take these as argparse parent parsers (``add_parser(..., parents=options("exp", "subset"))``),
so an option means the same and defaults the same in every command that has it. Where a
dataclass holds a setting's default (``TrainConfig``, ``AlignerTrainingConfig``, ``DecoderConfig``, ``GraphOptions``),
:func:`add_field` reads it from the dataclass instead of writing it a second time.

This module is imported when the CLI starts: it must stay light (no torch, no numpy).
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

#: ``--device`` of the inference commands (training's device is the config key ``train.device``).
DEFAULT_DEVICE = "cpu"
#: utterances per shard of the array stores the commands write (features, posteriors, teacher stores)
DEFAULT_UTTS_PER_SHARD = 100
#: temperatures that the distillation measurements sweep by default (the paper's range)
DEFAULT_TEMPERATURES = (1.0, 2.0, 5.0, 10.0)


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name`` of ``cls``."""
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
            raise ValueError(f"{cls.__name__}.{name} has no default")
    raise ValueError(f"{cls.__name__} has no field {name!r}")


def add_field(parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, cls: type,
              name: str | None = None, help: str = "", **kwargs: Any) -> argparse.Action:
    """Add ``flag`` (e.g. ``--max-active``) whose type and default are those of ``cls``'s field.

    ``name`` defaults to the flag without dashes (``max_active``); the help ends with the default.
    """
    name = name or flag.lstrip("-").replace("-", "_")
    default = field_default(cls, name)
    text = f"{help} (default {default})" if help else f"default {default}"
    return parser.add_argument(flag, type=type(default), default=default, help=text.replace("%", "%%"), **kwargs)


def _train_config_default(name: str) -> Any:
    from asr_kd.training.config import TrainConfig  # yaml + dataclasses only

    return field_default(TrainConfig, name)


def _exp(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exp", required=True, type=Path,
                   help="experiment directory (its layout: asr_kd/experiment.py)")


def _subset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subset", required=True,
                   help="subset name as given to `asr-kd prepare` (its manifest, features and alignment under --exp)")


def _model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", nargs="+", required=True, type=Path,
                   help="model file, ensemble JSON, or several model files (combined as an ensemble)")


def _teacher(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", nargs="+", required=True, type=Path,
                   help="model file, ensemble JSON, or several model files (combined as an ensemble)")


def _combine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--combine", default=None,
                   help="ensemble combination: mean_prob (the paper), geometric or mean_logits "
                   "(default: an ensemble JSON's own, else mean_prob)")


def _device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=DEFAULT_DEVICE, help=f"torch device, e.g. cuda (default {DEFAULT_DEVICE})")


def _max_frames(p: argparse.ArgumentParser) -> None:
    default = _train_config_default("max_frames")
    p.add_argument("--max-frames", type=int, default=default,
                   help=f"padded frames per forward batch (memory; default {default}, as train.max_frames)")


def _threads(p: argparse.ArgumentParser) -> None:
    default = _train_config_default("threads")
    p.add_argument("--threads", type=int, default=default,
                   help=f"torch CPU threads (default {default} = torch's default; 1 is much faster on a busy "
                   "shared machine)")


def _jobs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")


def _utts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--utts", type=Path, default=None, help="only the utterance ids listed in this file")


def _utts_per_shard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--utts-per-shard", type=int, default=DEFAULT_UTTS_PER_SHARD,
                   help=f"utterances per shard of the store written (default {DEFAULT_UTTS_PER_SHARD})")


def _prior_scale(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prior-scale", type=float, default=1.0,
                   help="log-likelihood = log-posterior - prior_scale * log-prior (default 1.0)")


def _temperatures(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", nargs="+", type=float, default=list(DEFAULT_TEMPERATURES),
                   help=f"softmax temperatures T to measure at (default {' '.join(map(str, DEFAULT_TEMPERATURES))})")


def model_options() -> list[argparse.ArgumentParser]:
    """The options of a command that runs a model or an ensemble over a subset (``evaluate``, ``posteriors``)."""
    return options("model", "exp", "subset", "combine", "device", "max_frames", "threads")


def add_temperature(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=None,
                   help="softmax temperature (default: the ensemble JSON's, else 1)")


def load_cli_model(args: argparse.Namespace):
    """The :func:`model_options` of ``args`` as a :class:`~asr_kd.models.LoadedModel` (callers check it
    against the features and targets they use)."""
    import torch

    from asr_kd.models import load_model

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    return load_model(args.model, args.device, temperature=args.temperature, combine=args.combine)


_OPTIONS = {"exp": _exp, "subset": _subset, "model": _model, "teacher": _teacher, "combine": _combine,
            "device": _device, "max_frames": _max_frames, "threads": _threads, "jobs": _jobs, "utts": _utts,
            "utts_per_shard": _utts_per_shard, "prior_scale": _prior_scale, "temperatures": _temperatures}
_PARENTS: dict[str, argparse.ArgumentParser] = {}


def options(*names: str) -> list[argparse.ArgumentParser]:
    """Parent parsers of the shared options ``names`` (the keys of ``_OPTIONS``: exp, subset, model,
    teacher, combine, device, max_frames, threads, jobs, utts, utts_per_shard, prior_scale,
    temperatures), for ``add_parser(..., parents=...)``."""
    parents = []
    for name in names:
        if name not in _PARENTS:
            parent = argparse.ArgumentParser(add_help=False)
            _OPTIONS[name](parent)
            _PARENTS[name] = parent
        parents.append(_PARENTS[name])
    return parents
