"""TorchScript export: a model file that runs from C++ or Python without the asr_kd package."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from asr_kd.utils.atomic import write_with
from asr_kd.utils.errors import AsrKdError


def to_torchscript(model: nn.Module) -> torch.jit.ScriptModule:
    """Script ``model`` (eval mode) with its ``forward(feats (B, T, D), lengths (B,)) -> (B, T, S)``.

    Scripting rather than tracing: a trace freezes the conformer's attention reshapes to the
    example's length, so it would fail on any other number of frames.
    """
    with warnings.catch_warnings():
        # torch >= 2.9 marks torch.jit as deprecated; it is still the format C++ runtimes load.
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*deprecated")
        try:
            return torch.jit.script(model.eval())
        except Exception as err:  # TorchScript's frontend raises many types; name the model, keep the cause
            arch = getattr(model, "arch", type(model).__name__)
            raise AsrKdError(f"TorchScript export of the {arch} model failed: {str(err).strip().splitlines()[0]}") \
                from err


def export_torchscript(model: nn.Module, path: str | os.PathLike) -> Path:
    """Atomically write ``model`` as a TorchScript file (load with ``torch.jit.load``); returns ``path``."""
    scripted = to_torchscript(model)
    write_with(path, lambda tmp: scripted.save(str(tmp)), suffix=".pt")
    return Path(path)


def load_torchscript(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Load a TorchScript model written by :func:`export_torchscript` (eval mode)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*deprecated")
        return torch.jit.load(str(path), map_location=map_location).eval()
