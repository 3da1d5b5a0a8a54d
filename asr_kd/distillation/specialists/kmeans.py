"""k-means (k-means++ seeding, Lloyd iterations, best of several seeded restarts) in torch.

Written here because the toolkit's environment has no scikit-learn or SciPy, and the problem is
small (at most a few thousand senone columns): a dependency of tens of MB for ~50 lines is not
worth it. Deterministic for a given seed (a ``torch.Generator`` drives every random choice).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KMeansResult:
    """``centroids`` ``(k, D)``, ``labels`` ``(n,)`` int64, ``inertia`` (sum of squared distances)."""

    centroids: torch.Tensor
    labels: torch.Tensor
    inertia: float


def kmeans(points: torch.Tensor, k: int, seed: int = 0, restarts: int = 4, max_iter: int = 300,
           tol: float = 1e-10) -> KMeansResult:
    """Cluster ``points`` ``(n, D)`` into ``k`` clusters; the restart of lowest inertia wins.

    Empty clusters are re-seeded with the point farthest from its centroid. Iterations stop
    when no centroid moves by more than ``tol`` (squared, relative to the points' variance).
    """
    n = len(points)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= {n} points, got k = {k}")
    x = points.double()
    scale = float(x.var(0).sum()) or 1.0
    generator = torch.Generator().manual_seed(seed)
    best: KMeansResult | None = None
    for _ in range(max(restarts, 1)):
        centroids = _plus_plus(x, k, generator)
        for _ in range(max_iter):
            labels, dist = _assign(x, centroids)
            moved = centroids.clone()
            for c in range(k):
                members = labels == c
                if members.any():
                    moved[c] = x[members].mean(0)
                else:  # re-seed an empty cluster with the worst-fitted point
                    far = int(dist.argmax())
                    moved[c], dist[far] = x[far], 0.0
            shift = float(((moved - centroids) ** 2).sum(1).max()) / scale
            centroids = moved
            if shift <= tol:
                break
        labels, dist = _assign(x, centroids)
        result = KMeansResult(centroids, labels, float(dist.sum()))
        if best is None or result.inertia < best.inertia:
            best = result
    return best


def _assign(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of each point and its squared distance."""
    dist = torch.cdist(x, centroids) ** 2
    best, labels = dist.min(1)
    return labels, best


def _plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next centroid drawn with
    probability proportional to its squared distance from the nearest one chosen."""
    first = int(torch.randint(len(x), (1,), generator=generator))
    centroids = [x[first]]
    dist = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(dist.sum())
        if total <= 0:  # every point coincides with a centroid: any choice is as good
            pick = int(torch.randint(len(x), (1,), generator=generator))
        else:
            pick = int(torch.multinomial(dist / total, 1, generator=generator))
        centroids.append(x[pick])
        dist = torch.minimum(dist, ((x - x[pick]) ** 2).sum(1))
    return torch.stack(centroids)
