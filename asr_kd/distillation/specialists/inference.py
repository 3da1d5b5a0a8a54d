"""A generalist and its specialists as one acoustic model: combined log-posteriors per frame.

:class:`SpecialistCombination` has the interface of an acoustic model that outputs
log-probabilities (as :class:`~asr_kd.models.Ensemble` does): ``forward(feats (B, T, D),
lengths (B,)) -> (B, T, S)``. So the existing tools take it as it is: the posteriors writer of
``asr-kd posteriors`` (for ``asr-kd decode``) and the teacher-store dump of ``asr-kd distill
dump-teacher`` (soft targets at T are ``softmax(log q / T)``, q re-tempered).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from asr_kd.distillation.specialists.clusters import SenoneClusters
from asr_kd.distillation.specialists.combine import (
    DEFAULT_MAX_STEPS,
    DEFAULT_METHOD,
    DEFAULT_TOLERANCE,
    DEFAULT_TOP_N,
    Opinion,
    active_specialists,
    combine,
)
from asr_kd.distillation.specialists.layout import SpecialistsDir
from asr_kd.models import LoadedModel, load_model
from asr_kd.models.ensemble import Ensemble
from asr_kd.utils.errors import AsrKdError

DEFAULT_CHUNK_FRAMES = 4096  # frames per optimisation problem (L-BFGS memory: ~25 x chunk x S doubles)


@dataclass
class CombinedBatch:
    """One padded batch: ``log_q`` and ``generalist`` ``(B, T, S)`` float32 log-distributions,
    ``active`` ``(B, T, M)`` bool active specialists, ``max_grad`` the largest gradient left, and
    ``specialists``: specialist ``m`` -> its ``(N, K_m + 1)`` log-distribution (dustbin last,
    corrected) on the batch's ``N`` valid frames (utterance by utterance), for the specialists
    active on any of them."""

    log_q: torch.Tensor
    generalist: torch.Tensor
    active: torch.Tensor
    max_grad: float
    specialists: dict[int, torch.Tensor]


class SpecialistCombination(nn.Module):
    """Generalist + specialists, combined frame by frame as :mod:`.combine` says.

    Args:
        generalist: the generalist (a model, logits ``(B, T, S)``).
        specialists: specialist ``m`` outputs ``(B, T, K_m + 1)`` logits (dustbin last, corrected).
        clusters: their senone clusters (same order).
        top_n: generalist senones that select the active specialists.
        max_steps, tolerance, method: of the optimisation of each chunk of frames (:func:`.combine.combine`).
        chunk_frames: frames per optimisation problem (memory).
    """

    arch = "specialists"

    def __init__(self, generalist: nn.Module, specialists: Sequence[nn.Module], clusters: SenoneClusters,
                 top_n: int = DEFAULT_TOP_N, max_steps: int = DEFAULT_MAX_STEPS, tolerance: float = DEFAULT_TOLERANCE,
                 method: str = DEFAULT_METHOD, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> None:
        super().__init__()
        if len(specialists) != len(clusters):
            raise ValueError(f"{len(specialists)} specialists for {len(clusters)} clusters")
        for m, (net, cluster) in enumerate(zip(specialists, clusters.clusters)):
            if int(net.num_senones) != len(cluster) + 1:
                raise AsrKdError(f"specialist {m} has {net.num_senones} outputs, its cluster {len(cluster)} + dustbin")
        if int(generalist.num_senones) != clusters.num_senones:
            raise AsrKdError(f"the generalist has {generalist.num_senones} senones, its clusters "
                             f"{clusters.num_senones}")
        self.generalist, self.specialists = generalist, nn.ModuleList(specialists)
        self.clusters = clusters
        self.register_buffer("membership", clusters.membership(), persistent=False)
        self.top_n, self.max_steps, self.tolerance, self.method = top_n, max_steps, tolerance, method
        self.chunk_frames = chunk_frames
        self.num_senones, self.input_dim = int(generalist.num_senones), int(generalist.input_dim)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D)``, ``lengths (B,)`` -> combined log-probabilities ``(B, T, S)`` float32."""
        return self.combine_batch(feats, lengths).log_q

    def combine_batch(self, feats: torch.Tensor, lengths: torch.Tensor) -> CombinedBatch:
        """The combined and the generalist's log-distributions of a padded batch (padding: the generalist's)."""
        generalist = _log_probs(self.generalist, feats, lengths)
        valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]  # (B, T)
        flat = generalist[valid]  # (N, S)
        active = active_specialists(flat, self.membership, self.top_n)  # (N, M)
        specialist_log_probs: dict[int, torch.Tensor] = {}
        for m in torch.nonzero(active.any(0)).squeeze(1).tolist():
            specialist_log_probs[m] = _log_probs(self.specialists[m], feats, lengths)[valid]  # (N, K_m + 1)
        log_q, max_grad = flat.clone(), 0.0
        for start in range(0, len(flat), self.chunk_frames):
            chunk = slice(start, start + self.chunk_frames)
            opinions = []
            for m, log_p in specialist_log_probs.items():
                rows = torch.nonzero(active[chunk, m]).squeeze(1)
                cluster = torch.as_tensor(self.clusters.clusters[m], device=flat.device)
                opinions.append(Opinion(rows, cluster, log_p[chunk][rows]))
            result = combine(flat[chunk], opinions, self.max_steps, self.tolerance, self.method)
            log_q[chunk], max_grad = result.log_q, max(max_grad, result.max_grad)
        out = generalist.clone()
        out[valid] = log_q
        active_bt = torch.zeros(*valid.shape, len(self.specialists), dtype=torch.bool, device=feats.device)
        active_bt[valid] = active
        return CombinedBatch(out, generalist, active_bt, max_grad, specialist_log_probs)


def _log_probs(model: nn.Module, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(model(feats, lengths).float(), -1)


def load_generalist(clusters: SenoneClusters, source: str, device: str | torch.device = "cpu") -> LoadedModel:
    """The generalist ``clusters.json`` names (a single model file: specialists copy its body)."""
    path = clusters.info.get("generalist")
    if not path:
        raise AsrKdError(f"{source}: records no generalist model file")
    loaded = load_model(path, device)
    if isinstance(loaded.model, Ensemble):
        raise AsrKdError(f"{path}: the generalist must be one model file (its specialists copy its weights)")
    if loaded.num_senones != clusters.num_senones:
        raise AsrKdError(f"{path}: {loaded.num_senones} senones, but {source} clusters {clusters.num_senones}")
    return loaded


def load_combination(directory: str | os.PathLike, device: str | torch.device = "cpu", top_n: int = DEFAULT_TOP_N,
                     max_steps: int = DEFAULT_MAX_STEPS, tolerance: float = DEFAULT_TOLERANCE,
                     method: str = DEFAULT_METHOD,
                     chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> tuple[SpecialistCombination, LoadedModel]:
    """The trained specialists of ``directory`` (:mod:`.layout`) with their generalist ->
    ``(combination in eval mode, the generalist's LoadedModel: features, CMVN, metadata)``."""
    layout = SpecialistsDir(directory)
    clusters = SenoneClusters.load(layout.clusters)
    generalist = load_generalist(clusters, str(layout.clusters), device)
    missing = [m for m in range(len(clusters)) if not layout.specialist(m).exists()]
    if missing:
        raise AsrKdError(f"{layout.root}: specialists {missing[:10]} of {len(clusters)} are not trained "
                         f"(no {layout.specialist(missing[0])}); run `asr-kd specialists train` first")
    specialists = []
    for m in range(len(clusters)):
        loaded = load_model(layout.specialist(m), device)
        task = loaded.metadata.get("task") or {}
        if tuple(task.get("cluster", ())) != clusters.clusters[m]:
            raise AsrKdError(f"{layout.specialist(m)}: trained for another cluster than {layout.clusters}'s {m}")
        if generalist.cmvn_mode is not None:
            loaded.check_cmvn_mode(generalist.cmvn_mode, f"its generalist {generalist.name}")
        specialists.append(loaded.model)
    combination = SpecialistCombination(generalist.model, specialists, clusters, top_n, max_steps, tolerance, method,
                                        chunk_frames)
    return combination.to(device).eval(), generalist
