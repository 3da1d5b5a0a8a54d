"""ONNX export with dynamic batch and time axes, checked against PyTorch with onnxruntime.

The graph has inputs ``feats`` float32 ``(B, T, D)`` and ``lengths`` int64 ``(B,)`` and the
output ``logits`` float32 ``(B, T, num_senones)``, one row per 10 ms input frame (positions
past ``lengths`` are garbage, as in PyTorch).

We use the ``torch.export``-based exporter (``dynamo=True``, the default since torch 2.9;
needs ``onnxscript``): the legacy TorchScript-based exporter bakes the example's length into
the reshapes of torchaudio's conformer attention, so that graph fails on any other length.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from asr_kd.utils.atomic import atomic_path
from asr_kd.utils.errors import AsrKdError

OPSET = 18
INPUT_NAMES = ("feats", "lengths")
OUTPUT_NAME = "logits"


def example_inputs(input_dim: int, frames: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of two utterances, ``(2, frames, input_dim)`` N(0, 1) features and their lengths.

    Batch 2 and unequal lengths keep ``torch.export`` from specialising either axis to the example.
    """
    generator = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, frames, input_dim, generator=generator)
    return feats, torch.tensor([frames, frames - 7], dtype=torch.int64)


def export_onnx(model: nn.Module, path: str | os.PathLike, opset: int = OPSET) -> Path:
    """Atomically write ``model`` as a self-contained ONNX file (weights inside, < 2 GB); returns ``path``."""
    model = model.eval()
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    with atomic_path(path, suffix=".onnx") as tmp, _quiet_exporter():
        try:
            torch.onnx.export(
                model, example_inputs(model.input_dim), str(tmp), input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME], dynamic_shapes={"feats": {0: batch, 1: time}, "lengths": {0: batch}},
                opset_version=opset, dynamo=True, external_data=False, verbose=False,
            )
        except Exception as err:  # the exporter raises many types; name the model and keep the cause
            raise AsrKdError(f"ONNX export of the {getattr(model, 'arch', type(model).__name__)} model failed: "
                             f"{str(err).splitlines()[0]}") from err
    return Path(path)


@contextlib.contextmanager
def _quiet_exporter():
    """Hide the exporter's chatter (graph dumps on stderr, torchvision notices, axis-name warnings)."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnx_ir", "onnxscript")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def onnx_session(path: str | os.PathLike):
    """An ``onnxruntime.InferenceSession`` on the CPU for an exported model."""
    import onnxruntime

    if not Path(path).exists():
        raise AsrKdError(f"{path}: ONNX model does not exist")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(session, feats: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``feats (B, T, D)`` float32, ``lengths (B,)`` -> ``(B, T, S)`` float32 logits from an ONNX session."""
    inputs = {INPUT_NAMES[0]: np.ascontiguousarray(feats, dtype=np.float32),
              INPUT_NAMES[1]: np.ascontiguousarray(lengths, dtype=np.int64)}
    return session.run([OUTPUT_NAME], inputs)[0]


@torch.no_grad()
def onnx_max_abs_diff(model: nn.Module, session, feats: torch.Tensor, lengths: torch.Tensor) -> float:
    """Largest ``|ONNX - PyTorch|`` logit difference over the valid frames of a padded batch.

    Args:
        feats: ``(B, T, D)`` features (normalised as in training).
        lengths: ``(B,)`` valid frames per utterance.
    """
    reference = model.eval()(feats, lengths).float().numpy()
    exported = run_onnx(session, feats.numpy(), lengths.numpy())
    if exported.shape != reference.shape:
        raise AsrKdError(f"ONNX output shape {exported.shape} differs from PyTorch's {reference.shape}")
    valid = np.arange(feats.shape[1])[None, :] < lengths.numpy()[:, None]
    return float(np.abs(exported - reference)[valid].max())
