"""Clusters of confusable senones, one per specialist, from the covariance of a generalist's predictions.

As Hinton et al. (2015, section 5.1): k-means on the columns of the covariance matrix ``C``
``(S, S)`` of the generalist's predicted distributions (:mod:`.covariance`); column ``j`` holds how
senone ``j``'s predicted probability covaries with every senone's, so senones the generalist
confuses (predicted together, trading mass) have nearby columns. k-means with ``num_clusters``
centroids partitions the senones; specialist ``m``'s cluster is the ``cluster_size`` members of
k-means cluster ``m`` nearest to its centroid, completed (when it has fewer members) with the
nearest senones of other clusters. Every cluster thus has the configured size; clusters overlap
only through that completion, and senones far from their centroid belong to none, as with the
paper's specialists (61 x 300 of JFT's 15k classes; its table 4 counts test cases by how many
specialists cover their class). Taking the ``cluster_size`` nearest senones of *all* columns
instead makes clusters near-duplicates: several centroids share the same nearest columns (seen
on the tiny data: 4 clusters of 12 covered 26 senones).

Raw covariance columns (``column_norm="none"``) are the paper's choice, but their norm grows with
a senone's prediction variance, which spans orders of magnitude for senones (silence vs rare
triphone states), so k-means spends its centroids on the few high-variance senones and puts the
rest near the origin together: on the tiny data's generalist (150 senones) it gave k-means
clusters of 2, 146, 1 and 1 senones. ``column_norm="l2"`` (the default of ``asr-kd specialists
cluster``) clusters unit-length columns, the direction of co-variation only: 28, 15, 47 and 60.

The JSON file (``<dir>/clusters.json`` of ``asr-kd specialists cluster``)::

    {"format": "asr_kd.senone_clusters/1", "num_senones": S, "clusters": [[s, ...], ...],
     "generalist": "<model file>", "subset": ..., "frames": ..., "seed": ..., "column_norm": ...}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from asr_kd.distillation.specialists.kmeans import kmeans
from asr_kd.utils.atomic import write_json
from asr_kd.utils.errors import AsrKdError

CLUSTERS_FORMAT = "asr_kd.senone_clusters/1"
COLUMN_NORMS = ("none", "l2")


@dataclass(frozen=True)
class SenoneClusters:
    """The specialists' senone sets.

    Attributes:
        num_senones: S, the generalist's output size.
        clusters: one sorted list of senone ids per specialist.
        info: provenance (generalist file, subset, frames, seed, clustering settings).
    """

    num_senones: int
    clusters: tuple[tuple[int, ...], ...]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m, cluster in enumerate(self.clusters):
            if not cluster or len(set(cluster)) != len(cluster) or not all(0 <= s < self.num_senones for s in cluster):
                raise AsrKdError(f"senone cluster {m} must hold distinct senone ids in 0..{self.num_senones - 1}, "
                                 f"got {list(cluster)[:10]}")
            if len(cluster) >= self.num_senones:
                raise AsrKdError(f"senone cluster {m} holds every senone: a specialist needs a dustbin class")

    def __len__(self) -> int:
        return len(self.clusters)

    def membership(self) -> torch.Tensor:
        """``(M, S)`` bool: ``[m, s]`` = senone ``s`` is in cluster ``m``."""
        mask = torch.zeros(len(self.clusters), self.num_senones, dtype=torch.bool)
        for m, cluster in enumerate(self.clusters):
            mask[m, list(cluster)] = True
        return mask

    def coverage(self) -> torch.Tensor:
        """``(S,)`` int64: how many clusters hold each senone."""
        return self.membership().sum(0)

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {"format": CLUSTERS_FORMAT, "num_senones": self.num_senones,
                          "clusters": [list(c) for c in self.clusters], **self.info})

    @classmethod
    def load(cls, path: str | os.PathLike) -> SenoneClusters:
        path = Path(path)
        if not path.exists():
            raise AsrKdError(f"{path}: senone clusters do not exist (write them with `asr-kd specialists cluster`)")
        try:
            raw = json.loads(path.read_text())
            if raw.get("format") != CLUSTERS_FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {CLUSTERS_FORMAT}")
            info = {k: v for k, v in raw.items() if k not in ("format", "num_senones", "clusters")}
            return cls(int(raw["num_senones"]), tuple(tuple(int(s) for s in c) for c in raw["clusters"]), info)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise AsrKdError(f"{path}: not a senone clusters file ({err})") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def confusable_clusters(covariance: torch.Tensor, num_clusters: int, cluster_size: int, seed: int = 0,
                        column_norm: str = "none", restarts: int = 4) -> list[tuple[int, ...]]:
    """``num_clusters`` sets of ``cluster_size`` senones from a ``(S, S)`` prediction covariance.

    k-means (seeded, :func:`~asr_kd.distillation.specialists.kmeans.kmeans`) on the ``S`` columns;
    cluster ``m`` = the ``cluster_size`` members of k-means cluster ``m`` nearest to its centroid
    (Euclidean), then if it has fewer, the nearest other columns; sorted, in k-means cluster order.
    """
    num_senones = len(covariance)
    if covariance.shape != (num_senones, num_senones):
        raise ValueError(f"expected a square covariance matrix, got {tuple(covariance.shape)}")
    if not 1 <= num_clusters <= num_senones:
        raise AsrKdError(f"--num-clusters must lie in 1..{num_senones} (the senones), got {num_clusters}")
    if not 1 <= cluster_size < num_senones:
        raise AsrKdError(f"--cluster-size must lie in 1..{num_senones - 1} (a specialist keeps a dustbin class), "
                         f"got {cluster_size}")
    if column_norm not in COLUMN_NORMS:
        raise AsrKdError(f"unknown column norm {column_norm!r}; choose from {COLUMN_NORMS}")
    columns = covariance.double().T.contiguous()  # row j = column j (the matrix is symmetric anyway)
    if column_norm == "l2":
        columns = columns / columns.norm(dim=1, keepdim=True).clamp_min(1e-30)
    result = kmeans(columns, num_clusters, seed=seed, restarts=restarts)
    dist = torch.cdist(result.centroids, columns)  # (num_clusters, S)
    foreign = result.labels[None, :] != torch.arange(num_clusters)[:, None]  # not a member of that k-means cluster
    rank = dist + foreign * (float(dist.max()) + 1.0)  # every member before every other senone
    nearest = rank.topk(cluster_size, dim=1, largest=False).indices
    return [tuple(sorted(int(s) for s in row)) for row in nearest]
