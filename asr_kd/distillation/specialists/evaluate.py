"""Frame accuracy of a generalist vs generalist + specialists, by how many specialists cover the truth.

The paper's tables 3 and 4 (Hinton et al. 2015, section 5.3): overall accuracy of both, the
"conditional" accuracy on the frames whose true class some specialist covers, and for each
number ``c`` of specialists whose cluster holds the frame's aligned senone the frames, the
correct frames of each system, their difference and the relative change. ``c = 0`` frames can
change too (an active specialist moves mass to or from its cluster), which this table shows.

Beyond the paper, :class:`SpecialistTable` asks each specialist where it helps or hurts, on the
frames where it is active: when the true senone is in its cluster, is its own choice among the
cluster's senones right more often than the generalist's choice among them, and how often does
it put the frame in its dustbin; when the true senone is outside, how often does it (rightly)
choose the dustbin. Its mean dustbin probability beside the generalist's mass outside the
cluster shows how far the specialist pulls the combination towards or away from the cluster.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from asr_kd.distillation.specialists.inference import SpecialistCombination
from asr_kd.features.dataset import FeatureSet, check_aligned
from asr_kd.models.inference import utterance_batches
from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter


class CoverageTable:
    """Correct-frame counts of both systems per coverage ``c`` of the true senone."""

    def __init__(self, coverage: torch.Tensor) -> None:
        self.coverage = coverage  # (S,) int64
        self.rows: dict[int, list[int]] = {}  # c -> [frames, generalist correct, combined correct]
        self.active_frames = self.active_total = 0

    def update(self, target: torch.Tensor, generalist: torch.Tensor, combined: torch.Tensor,
               active: torch.Tensor) -> None:
        """``(N,)`` targets and argmax senones of both systems, ``(N, M)`` active specialists."""
        covered = self.coverage.to(target.device)[target]
        g_hit, c_hit = generalist == target, combined == target
        for c in torch.unique(covered).tolist():
            here = covered == c
            row = self.rows.setdefault(int(c), [0, 0, 0])
            row[0] += int(here.sum())
            row[1] += int(g_hit[here].sum())
            row[2] += int(c_hit[here].sum())
        per_frame = active.sum(-1)
        self.active_frames += int((per_frame > 0).sum())
        self.active_total += int(per_frame.sum())

    def to_dict(self) -> dict:
        frames = sum(r[0] for r in self.rows.values())
        covered = [r for c, r in self.rows.items() if c > 0]

        def part(rows: list[list[int]]) -> dict:
            n, g, c = (sum(r[i] for r in rows) for i in range(3))
            return {"frames": n, "generalist_frame_acc": g / n if n else None,
                    "combined_frame_acc": c / n if n else None, "delta_correct": c - g,
                    "relative_change": (c - g) / g if g else None}

        overall = part(list(self.rows.values()))
        return {"frames": frames, "frame_acc": overall["combined_frame_acc"], "overall": overall,
                "conditional": part(covered),  # true senone covered by >= 1 specialist (the paper's table 3)
                "by_coverage": [dict(part([self.rows[c]]), specialists_covering=c) for c in sorted(self.rows)],
                "frames_with_active_specialists": self.active_frames,
                "mean_active_specialists": self.active_total / frames if frames else None}


class SpecialistTable:
    """Per specialist ``m``, counts over the frames where it is active (``(M, 9)`` float64 sums):

    ``active``; with the true senone in ``C_m``: ``inside``, ``generalist_inside_correct`` (the
    generalist's most probable senone *of the cluster* is the truth), ``specialist_inside_correct``
    (the specialist's most probable cluster senone is), ``specialist_dustbin_inside`` (its argmax is
    the dustbin), and the sums of ``p_m(dustbin)`` and of the generalist's mass outside ``C_m``;
    with the true senone outside: ``outside``, ``specialist_dustbin_outside`` (argmax = dustbin).
    """

    FIELDS = ("active", "inside", "generalist_inside_correct", "specialist_inside_correct",
              "specialist_dustbin_inside", "specialist_dustbin_mass_inside", "generalist_outside_mass_inside",
              "outside", "specialist_dustbin_outside")

    def __init__(self, clusters: Sequence[Sequence[int]], num_senones: int) -> None:
        self.clusters = [torch.as_tensor(list(c), dtype=torch.int64) for c in clusters]
        self.num_senones = num_senones
        self.sums = np.zeros((len(self.clusters), len(self.FIELDS)))

    def update(self, target: torch.Tensor, generalist: torch.Tensor, active: torch.Tensor,
               specialists: dict[int, torch.Tensor]) -> None:
        """``(N,)`` targets, ``(N, S)`` generalist log-probabilities, ``(N, M)`` active specialists and
        :attr:`CombinedBatch.specialists` of the same ``N`` frames."""
        for m, log_p in specialists.items():
            rows = active[:, m]
            if not bool(rows.any()):
                continue
            cluster = self.clusters[m].to(target.device)
            position = torch.full((self.num_senones,), -1, dtype=torch.int64, device=target.device)
            position[cluster] = torch.arange(len(cluster), device=target.device)
            truth = position[target[rows]]  # (P,) index in the cluster, -1 outside
            inside, dustbin = truth >= 0, len(cluster)
            own = log_p[rows]
            g_cluster = generalist[rows][:, cluster]
            dustbin_prob = own[:, dustbin].exp()
            g_outside = 1 - g_cluster.exp().sum(-1)
            picked = own.argmax(-1)
            t = truth[inside]
            self.sums[m] += [
                int(rows.sum()), int(inside.sum()),
                int((g_cluster[inside].argmax(-1) == t).sum()), int((own[inside, :dustbin].argmax(-1) == t).sum()),
                int((picked[inside] == dustbin).sum()), float(dustbin_prob[inside].sum()),
                float(g_outside[inside].clamp_min(0).sum()),
                int((~inside).sum()), int((picked[~inside] == dustbin).sum())]

    def to_dict(self) -> dict:
        def rates(row: np.ndarray) -> dict:
            counts = dict(zip(self.FIELDS, row.tolist()))
            inside, outside = counts["inside"], counts["outside"]
            return {**{k: int(v) for k, v in counts.items() if "mass" not in k},
                    "generalist_inside_acc": counts["generalist_inside_correct"] / inside if inside else None,
                    "specialist_inside_acc": counts["specialist_inside_correct"] / inside if inside else None,
                    "specialist_dustbin_rate_inside": counts["specialist_dustbin_inside"] / inside if inside else None,
                    "mean_specialist_dustbin_prob_inside":
                        counts["specialist_dustbin_mass_inside"] / inside if inside else None,
                    "mean_generalist_outside_mass_inside":
                        counts["generalist_outside_mass_inside"] / inside if inside else None,
                    "specialist_dustbin_rate_outside":
                        counts["specialist_dustbin_outside"] / outside if outside else None}

        return {"all": rates(self.sums.sum(0)),
                "per_specialist": [dict(rates(row), specialist=m, cluster_size=len(self.clusters[m]))
                                   for m, row in enumerate(self.sums)]}


def evaluate_combination(combination: SpecialistCombination, features: FeatureSet, senones: ArrayStore,
                         utt_ids: Sequence[str], device: str | torch.device = "cpu", max_frames: int = 20000,
                         posteriors_out: str | os.PathLike | None = None, posteriors_meta: dict | None = None,
                         utts_per_shard: int = 100, progress: bool = True) -> dict:
    """Score both systems on ``utt_ids`` against ``senones``; with ``posteriors_out``, also write the
    combined ``(T, S)`` float16 log-posteriors there (the store ``asr-kd posteriors`` writes, for
    ``asr-kd decode``; shards of ``utts_per_shard`` sorted utterances).

    Returns :meth:`CoverageTable.to_dict` plus ``utterances`` and ``max_grad`` (the largest
    gradient entry the optimisation left).
    """
    ids = sorted(utt_ids)
    table = CoverageTable(combination.clusters.coverage())
    own = SpecialistTable(combination.clusters.clusters, combination.num_senones)
    writer = None
    if posteriors_out is not None:
        meta = {"kind": "log_posteriors", "num_senones": combination.num_senones, "temperature": 1.0,
                **(posteriors_meta or {})}
        writer = ArrayStoreWriter(posteriors_out, np.dtype("float16"), (combination.num_senones,), meta)
    max_grad = 0.0
    bar = tqdm(total=len(ids), desc="generalist + specialists", unit="utt", disable=not progress)
    for shard_id, start in enumerate(range(0, len(ids), utts_per_shard)):
        shard_ids = ids[start:start + utts_per_shard]
        posteriors = {}
        for batch in utterance_batches(features, shard_ids, max_frames):
            with torch.no_grad():
                out = combination.combine_batch(batch["feats"].to(device), batch["lengths"].to(device))
            max_grad = max(max_grad, out.max_grad)
            targets, generalists, actives = [], [], []  # the batch's valid frames, as out.specialists holds them
            for b, (utt_id, n) in enumerate(zip(batch["utt_ids"], batch["lengths"].tolist())):
                target = torch.from_numpy(senones[utt_id].astype("int64")).to(out.log_q.device)
                check_aligned(utt_id, out.log_q[b, :n], target, str(senones.root))
                table.update(target, out.generalist[b, :n].argmax(-1), out.log_q[b, :n].argmax(-1), out.active[b, :n])
                posteriors[utt_id] = out.log_q[b, :n].cpu().numpy()
                targets.append(target)
                generalists.append(out.generalist[b, :n])
                actives.append(out.active[b, :n])
            own.update(torch.cat(targets), torch.cat(generalists), torch.cat(actives), out.specialists)
            bar.update(len(batch["utt_ids"]))
        if writer is not None:
            writer.write_shard(shard_id, ((u, posteriors[u]) for u in shard_ids))
    bar.close()
    return dict(table.to_dict(), utterances=len(ids), max_grad=max_grad, specialists_own=own.to_dict())


def coverage_markdown(result: dict) -> str:
    """The paper's tables 3 and 4 from :func:`evaluate_combination`'s result: one row per number of
    specialists covering the true senone, then the conditional and overall rows."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.2f}"

    lines = ["| specialists covering the true senone | frames | generalist frame acc. (%) | + specialists (%) | "
             "delta correct frames | relative change (%) |", "|---|---|---|---|---|---|"]
    rows = [(str(r["specialists_covering"]), r) for r in result["by_coverage"]]
    rows += [(">= 1 (conditional)", result["conditional"]), ("all frames", result["overall"])]
    for name, r in rows:
        lines.append(f"| {name} | {r['frames']} | {pct(r['generalist_frame_acc'])} | {pct(r['combined_frame_acc'])} | "
                     f"{r['delta_correct']:+d} | {pct(r['relative_change'])} |")
    return "\n".join(lines)


def specialists_markdown(result: dict) -> str:
    """:class:`SpecialistTable` of :func:`evaluate_combination`'s result: one row per specialist, then all."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.2f}"

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    lines = ["| specialist | cluster size | active frames | truth in cluster | generalist acc. in cluster (%) | "
             "specialist acc. in cluster (%) | specialist says dustbin, truth in cluster (%) | "
             "mean p(dustbin), truth in cluster | generalist mass outside, truth in cluster | "
             "specialist says dustbin, truth outside (%) |", "|---" * 10 + "|"]
    own = result["specialists_own"]
    rows = [(str(r["specialist"]), r) for r in own["per_specialist"]] + [("all", own["all"])]
    for name, r in rows:
        lines.append(f"| {name} | {r.get('cluster_size', '-')} | {r['active']} | {r['inside']} | "
                     f"{pct(r['generalist_inside_acc'])} | {pct(r['specialist_inside_acc'])} | "
                     f"{pct(r['specialist_dustbin_rate_inside'])} | {num(r['mean_specialist_dustbin_prob_inside'])} | "
                     f"{num(r['mean_generalist_outside_mass_inside'])} | {pct(r['specialist_dustbin_rate_outside'])} |")
    return "\n".join(lines)
