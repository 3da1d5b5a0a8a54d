"""How faithful stored soft targets are: per-frame divergences from the teacher's exact targets.

The reference ``p_T`` is the teacher's own soft targets at ``T`` computed in float32 from its
logits (for an ensemble: the paper's mean of the members' tempered probabilities, or the
store's combine mode). The store's target ``q_T`` is the distribution the distillation loss
trains towards (:func:`effective_log_targets`: a top-k store under its ``topk_policy``, a
low-rank store decoded at ``T``). Per frame, averaged over frames:

* ``kl_dense_store`` = KL(p || q) in nats: what the student loses by learning ``q`` instead
  of ``p`` (the soft cross-entropy is ``H(p) + KL(p || q_student)``). Infinite when ``q`` puts
  zero mass where the teacher has some (renormalised top-k). Entries below fp16's smallest
  number (``2^-24``) on both sides count as zero, so a dense fp16 store is not "infinitely" off.
* ``kl_store_dense`` = KL(q || p), finite for truncated targets: ``-log(kept mass)`` for
  renormalised top-k.
* ``kept_mass`` = ``sum_i min(p_i, q_i)`` = 1 - total variation: the part of the teacher's
  mass the store gets right (the top-k mass for renormalised top-k).
* ``top_k_mass``: the teacher's mass on the senones a top-k / low-rank store keeps exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from asr_kd.distillation.lowrank import LowRankTargets
from asr_kd.distillation.soft_targets import TopKTargets
from asr_kd.distillation.teacher_store import TeacherStore, tempered_batches
from asr_kd.features.dataset import FeatureSet

#: smallest positive float16 (subnormal): targets below it cannot be stored in fp16 at all
FP16_TINY = 2.0**-24


def effective_log_targets(targets: torch.Tensor | TopKTargets | LowRankTargets, temperature: float,
                          topk_policy: str = "renormalise", num_senones: int | None = None) -> torch.Tensor:
    """``(N, S)`` log of the distribution the distillation loss trains towards at ``temperature``.

    Dense probabilities are renormalised (fp16 rows sum to 1 only up to rounding); top-k targets
    follow :func:`~asr_kd.distillation.loss.soft_cross_entropy`'s ``topk_policy`` (``-inf`` off
    the top-k when renormalised); low-rank targets are decoded at ``temperature``.
    """
    if isinstance(targets, LowRankTargets):
        return targets.log_probs(temperature)
    if isinstance(targets, torch.Tensor):
        probs = targets.float()
        return (probs / probs.sum(-1, keepdim=True)).log()
    if num_senones is None:
        raise ValueError("top-k targets need num_senones")
    probs = targets.probs.float()
    if topk_policy == "renormalise":
        out = torch.full((len(probs), num_senones), -math.inf, device=probs.device)
        return out.scatter(1, targets.ids.long(), (probs / probs.sum(-1, keepdim=True)).log())
    if topk_policy != "tail":
        raise ValueError(f"unknown top-k policy {topk_policy!r}")
    tail = (1.0 - probs.sum(-1, keepdim=True)).clamp_min(0.0) / max(num_senones - targets.k, 1)
    out = tail.log().expand(len(probs), num_senones).clone()
    return out.scatter(1, targets.ids.long(), probs.log())


def frame_divergences(ref_log_probs: torch.Tensor, store_log_probs: torch.Tensor,
                      exact_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-frame ``(N,)`` metrics of the module docstring for ``(N, S)`` reference and store log-probabilities."""
    p, q = ref_log_probs.float().exp(), store_log_probs.float().exp()
    lp, lq = ref_log_probs.float(), store_log_probs.float()
    # entries neither side can hold in fp16 contribute nothing; anything else with q = 0 is infinite
    counted = (p >= FP16_TINY) | (q > 0)
    kl_pq = torch.where(counted & (p > 0), p * (lp - lq), torch.zeros_like(p)).sum(-1)
    kl_qp = torch.where(q > 0, q * (lq - lp), torch.zeros_like(q)).sum(-1)
    out = {"kl_dense_store": kl_pq, "kl_store_dense": kl_qp, "kept_mass": torch.minimum(p, q).sum(-1)}
    if exact_ids is not None:
        out["top_k_mass"] = p.gather(1, exact_ids.long()).sum(-1)
    return out


@dataclass
class FidelityAccumulator:
    """Frame-weighted means of :func:`frame_divergences` over batches, per temperature."""

    sums: dict[float, dict[str, float]] = field(default_factory=dict)
    frames: dict[float, int] = field(default_factory=dict)

    def add(self, temperature: float, divergences: Mapping[str, torch.Tensor]) -> None:
        sums = self.sums.setdefault(temperature, {})
        for name, values in divergences.items():
            sums[name] = sums.get(name, 0.0) + float(values.double().sum())
        self.frames[temperature] = self.frames.get(temperature, 0) + len(next(iter(divergences.values())))

    def means(self) -> dict[float, dict[str, float]]:
        return {t: {k: v / self.frames[t] for k, v in sums.items()} for t, sums in self.sums.items()}


def exact_ids(targets: torch.Tensor | TopKTargets | LowRankTargets) -> torch.Tensor | None:
    """The senones a store keeps exactly (``None`` for dense targets)."""
    return None if isinstance(targets, torch.Tensor) else targets.ids


def temperature_key(temperature: float) -> str:
    """``T2``, ``T2.5``: JSON keys readable as dotted metric paths (``T2.kl_dense_store``)."""
    return f"T{temperature:g}"


def markdown_table(rows: Sequence[dict], temperatures: Sequence[float]) -> str:
    """One line per store: bytes/frame, % of dense fp16, then KL(dense||store) and kept mass per T."""
    head = ["store", "kind", "bytes/frame", "% of dense fp16"]
    for t in temperatures:
        head += [f"KL T={t:g}", f"kept T={t:g}"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in rows:
        cells = [row["name"], row["store_kind"], f"{row['bytes_per_frame']:.1f}",
                 f"{100 * row['fraction_of_dense']:.2f}"]
        for t in temperatures:
            m = row.get(temperature_key(t))
            cells += ["–", "–"] if m is None else [format_kl(m["kl_dense_store"]), f"{100 * m['kept_mass']:.2f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_kl(value: float) -> str:
    """A KL in nats for a table: ``∞``, 4 decimals, or 1 significant digit below 1e-3 (rounding
    noise below 0 shows as 0)."""
    value = max(value, 0.0)
    return "∞" if math.isinf(value) else f"{value:.4f}" if value >= 1e-3 or value == 0 else f"{value:.1e}"


@dataclass(frozen=True)
class StoreUnderTest:
    """A store read the way training reads it: ``name`` labels its row, ``topk_policy`` applies to top-k."""

    name: str
    store: TeacherStore
    topk_policy: str = "renormalise"


def measure_stores(teacher: nn.Module, features: FeatureSet, utt_ids: Sequence[str],
                   stores: Sequence[StoreUnderTest], temperatures: Sequence[float],
                   device: str | torch.device = "cpu", max_frames: int = 10000,
                   progress: bool = True) -> tuple[dict[str, dict[float, dict[str, float]]], dict[float, float]]:
    """Mean per-frame metrics of each store at each of ``temperatures`` it serves, over ``utt_ids``.

    Returns:
        ``({store name: {T: {metric: mean}}}, {T: re-tempering floor})``. The floor is
        KL(p_T || softmax(log p_1 / T)) of the teacher itself (mean_prob combination): 0 for one
        model, the error of any re-tempered T = 1 representation of an ensemble.
    """
    combines = ["mean_prob", *sorted({s.store.config.combine for s in stores} - {"mean_prob"})]
    settings = [(t, c) for c in combines for t in sorted({1.0, *temperatures})]
    results = {s.name: FidelityAccumulator() for s in stores}
    floor = FidelityAccumulator()
    batches = tempered_batches(teacher, features, utt_ids, settings, device, max_frames)
    for batch_ids, lengths, log_probs in tqdm(batches, desc="fidelity", unit="batch", disable=not progress):
        by_setting = dict(zip(settings, log_probs))
        for b, (utt_id, n) in enumerate(zip(batch_ids, lengths)):
            base = by_setting[(1.0, "mean_prob")][b, :n]
            for t in temperatures:
                floor.add(t, frame_divergences(by_setting[(t, "mean_prob")][b, :n],
                                               torch.log_softmax(base / t, dim=-1)))
            for s in stores:
                config = s.store.config
                targets = s.store.utterance(utt_id).to(device)
                for t in temperatures:
                    if not config.serves(t):
                        continue
                    q = effective_log_targets(targets, t, s.topk_policy, config.num_senones)
                    results[s.name].add(t, frame_divergences(by_setting[(t, config.combine)][b, :n], q,
                                                             exact_ids(targets)))
    floor_means = {t: m["kl_dense_store"] for t, m in floor.means().items()}
    return {name: acc.means() for name, acc in results.items()}, floor_means
