"""A specialist network: the generalist's body with an output layer for its cluster and a dustbin.

A specialist starts as a copy of the generalist (Hinton et al. 2015, section 5.1: "initialized
with the weights of the generalist"), except for the output layer, which has ``K + 1`` rows:

* rows ``0..K-1`` = the generalist's output rows (weights and bias) of the cluster's senones, so
  the specialist starts with the generalist's logits for them;
* row ``K`` (dustbin) = the mean of the other senones' rows, bias ``+ log(S - K)``: the dustbin
  logit should be ``logsumexp`` of the other senones' logits ``z_j = w_j . h + b_j``, and
  ``mean_j z_j + log(S - K)`` is its linear lower bound (Jensen), equal to it when those logits are
  equal. Training quickly corrects the gap.

After training the dustbin bias is raised by ``log r`` (:func:`~.targets.dustbin_log_correction`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from asr_kd.utils.errors import AsrKdError

OUTPUT_LAYER = "output"  # the senone layer of every asr_kd acoustic model (DNN, conformer)


def body_config(generalist: nn.Module) -> dict:
    """The generalist's constructor kwargs without its senone count: those of its specialists' bodies."""
    return {k: v for k, v in generalist.config.items() if k not in ("num_senones", "input_dim")}


def initialise_from_generalist(specialist: nn.Module, generalist: nn.Module, cluster: Sequence[int]) -> None:
    """Copy ``generalist``'s weights into ``specialist`` (same architecture, ``K + 1`` outputs) as the
    module docstring says; in place."""
    if specialist.arch != generalist.arch or body_config(specialist) != body_config(generalist):
        raise AsrKdError(f"a specialist must have its generalist's body: {specialist.arch} {body_config(specialist)} "
                         f"vs {generalist.arch} {body_config(generalist)}")
    if int(specialist.num_senones) != len(cluster) + 1:
        raise AsrKdError(f"a specialist of a {len(cluster)}-senone cluster needs {len(cluster) + 1} outputs, "
                         f"got {specialist.num_senones}")
    body = {k: v for k, v in generalist.state_dict().items() if not k.startswith(OUTPUT_LAYER + ".")}
    missing, unexpected = specialist.load_state_dict(body, strict=False)
    if unexpected or {k.split(".")[0] for k in missing} != {OUTPUT_LAYER}:
        raise AsrKdError(f"generalist and specialist bodies differ (missing {missing}, unexpected {unexpected})")
    source, target = getattr(generalist, OUTPUT_LAYER), getattr(specialist, OUTPUT_LAYER)
    inside = torch.as_tensor(list(cluster), dtype=torch.int64)
    outside = torch.ones(int(generalist.num_senones), dtype=torch.bool)
    outside[inside] = False
    with torch.no_grad():
        target.weight[:-1] = source.weight[inside]
        target.bias[:-1] = source.bias[inside]
        target.weight[-1] = source.weight[outside].mean(0)
        target.bias[-1] = source.bias[outside].mean() + math.log(int(outside.sum()))


def raise_dustbin(specialist: nn.Module, log_ratio: float) -> None:
    """Add ``log_ratio`` to the dustbin (last) logit's bias, in place."""
    with torch.no_grad():
        getattr(specialist, OUTPUT_LAYER).bias[-1] += log_ratio
