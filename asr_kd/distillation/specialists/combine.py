"""Combining a generalist with its specialists: the distribution q closest to all of them.

Hinton et al. (2015, section 5.2). For a frame, the generalist's ``top_n`` senones select the
active specialists (those whose cluster holds any of them); the frame's full distribution
``q = softmax(z)`` over the ``S`` senones then minimises

    L(z) = KL(p_g || q) + sum over active m of KL(p_m || P_m q)

where ``p_g`` ``(S,)`` is the generalist's distribution, ``p_m`` ``(K_m + 1,)`` specialist ``m``'s over
its cluster ``C_m`` and its dustbin, and ``P_m q`` projects ``q`` onto the same classes:
``q_c`` for ``c`` in ``C_m``, dustbin = ``sum of q_s for s not in C_m``. A frame without active
specialists keeps ``q = p_g``. Two optimisers of the same ``L``, both starting at the generalist's
``q`` and stopping after ``max_steps`` iterations or once every entry of ``dL/dz`` is below ``tolerance``:

* ``lbfgs`` (the paper's gradient descent on ``z``): torch's L-BFGS with a strong-Wolfe line
  search on the sum of the frames' ``L`` (frames are independent, so the sum's gradient is each
  frame's own; the line search step is shared).
* ``em``: a majorise-minimise (EM) fixed point. Each dustbin term ``-p_m(d) log Q_out`` is bounded
  by Jensen with the current ``q`` (the dustbin mass spread over the senones outside the cluster
  in proportion to ``q``), which turns ``L`` into one weighted cross-entropy whose minimiser is
  ``q_new = W(q) / (1 + |A|)``, ``W_s = p_g(s) + sum_m [s in C_m] p_m(s) + sum_m [s not in C_m]
  p_m(d) q_s / Q_out,m`` (``|A|`` = active specialists). ``L`` never increases, no line search,
  and ``dL/dz = (1 + |A|) q - W(q)`` comes for free; with one active specialist its first step is
  the closed-form optimum below. The default: on the overlapping-specialists problem of
  ``tests/distillation/test_specialists_combine.py`` it leaves gradient entries of 4e-8 after 20
  iterations, L-BFGS 1e-3 after 50 and 2e-6 after 200; on 4096 frames of 1000 senones
  (``benchmarks/bench_specialists.py``) 17k frames/s against L-BFGS's 36 (whose step, shared by all
  frames of a chunk, leaves gradients of 0.18 after 100 iterations).

With one active specialist whose cluster is disjoint from the others, the optimum is closed
form: ``q_c = (p_g(c) + p_m(c)) / 2`` inside the cluster and the generalist's shape, rescaled to
``(P_g(out) + p_m(dustbin)) / 2``, outside (the tests check the optimiser against it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_TOP_N = 1  # the paper's n
DEFAULT_MAX_STEPS, DEFAULT_TOLERANCE = 100, 1e-6
METHODS = ("lbfgs", "em")
DEFAULT_METHOD = "em"  # same L, ~10x fewer iterations to a 100x smaller gradient (module docstring)


def active_specialists(generalist_log_probs: torch.Tensor, membership: torch.Tensor,
                       top_n: int = DEFAULT_TOP_N) -> torch.Tensor:
    """``(N, M)`` bool: specialist ``m`` is active on frame ``n`` (its cluster holds one of the
    generalist's ``top_n`` senones). ``generalist_log_probs`` ``(N, S)``, ``membership`` ``(M, S)`` bool."""
    top = generalist_log_probs.topk(top_n, dim=-1).indices  # (N, n)
    return membership.to(top.device)[:, top].any(-1).T


@dataclass
class Opinion:
    """One specialist's distributions on the frames where it is active.

    Attributes:
        rows: ``(P,)`` int64 frame rows (into the ``N`` frames being combined).
        cluster: ``(K,)`` int64 its senones.
        log_probs: ``(P, K + 1)`` its log-distribution (dustbin last), after the dustbin correction.
    """

    rows: torch.Tensor
    cluster: torch.Tensor
    log_probs: torch.Tensor


def project(log_q: torch.Tensor, cluster: torch.Tensor) -> torch.Tensor:
    """``log P_m q``: ``(P, S)`` log-distributions -> ``(P, K + 1)``: the cluster's entries and the
    log of the mass outside it (computed from the outside entries, exact when it is tiny)."""
    outside = torch.ones(log_q.shape[-1], dtype=torch.bool, device=log_q.device)
    outside[cluster] = False
    return torch.cat([log_q[:, cluster], torch.logsumexp(log_q[:, outside], -1, keepdim=True)], -1)


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``(..., C)`` log-distributions -> ``(...,)`` ``KL(p || q)`` in nats (``0 log 0 = 0``)."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


def combination_loss(z: torch.Tensor, generalist_log_probs: torch.Tensor, opinions: list[Opinion]) -> torch.Tensor:
    """``(N,)`` per-frame ``L(z)`` (module docstring) for logits ``z`` ``(N, S)``."""
    log_q = torch.log_softmax(z, -1)
    loss = kl_divergence(generalist_log_probs, log_q)
    for op in opinions:
        loss = loss.index_add(0, op.rows, kl_divergence(op.log_probs, project(log_q[op.rows], op.cluster)))
    return loss


@dataclass
class Combination:
    """``log_q`` ``(N, S)`` float32 combined log-distributions; ``steps`` L-BFGS iterations run (float64);
    ``max_grad`` largest gradient entry left (0 when no frame had an active specialist)."""

    log_q: torch.Tensor
    steps: int
    max_grad: float


def combine(generalist_log_probs: torch.Tensor, opinions: list[Opinion], max_steps: int = DEFAULT_MAX_STEPS,
            tolerance: float = DEFAULT_TOLERANCE, method: str = DEFAULT_METHOD) -> Combination:
    """Minimise ``L`` over ``z`` on the frames with an active specialist (the others keep ``p_g``).

    Args:
        generalist_log_probs: ``(N, S)`` the generalist's log-distributions.
        opinions: the active specialists' (rows into the ``N`` frames).
        max_steps, tolerance: iterations at most, and the gradient entry below which they stop.
        method: ``lbfgs`` or ``em`` (module docstring).
    """
    if method not in METHODS:
        raise ValueError(f"unknown combination method {method!r}; choose from {METHODS}")
    opinions = [op for op in opinions if len(op.rows)]
    if not opinions:
        return Combination(generalist_log_probs.float().clone(), 0, 0.0)
    # float64: in float32 the summed loss stops changing (L-BFGS's tolerance_change) while gradient
    # entries of ~1e-4 are left; the problems are small (chunks of frames), so the cost is minor
    log_g = generalist_log_probs.double()
    rows = torch.unique(torch.cat([op.rows for op in opinions]))
    local = torch.full((len(log_g),), -1, dtype=torch.int64, device=log_g.device)
    local[rows] = torch.arange(len(rows), device=log_g.device)
    sub = [Opinion(local[op.rows], op.cluster.to(log_g.device), op.log_probs.double()) for op in opinions]
    solve = _lbfgs if method == "lbfgs" else _em
    log_q, steps, max_grad = solve(log_g[rows], sub, max_steps, tolerance)
    out = log_g.clone()
    out[rows] = log_q
    return Combination(out.float(), steps, max_grad)


def _lbfgs(log_g: torch.Tensor, opinions: list[Opinion], max_steps: int,
           tolerance: float) -> tuple[torch.Tensor, int, float]:
    z = log_g.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([z], lr=1.0, max_iter=max_steps, tolerance_grad=tolerance,
                                  tolerance_change=1e-15, history_size=10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = combination_loss(z, log_g, opinions).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
        optimiser.zero_grad()
        combination_loss(z, log_g, opinions).sum().backward()
    steps = int(optimiser.state[z].get("n_iter", 0))
    return torch.log_softmax(z.detach(), -1), steps, float(z.grad.abs().max())


def _em(log_g: torch.Tensor, opinions: list[Opinion], max_steps: int,
        tolerance: float) -> tuple[torch.Tensor, int, float]:
    g = log_g.exp()
    q = g.clone()
    weight = torch.ones(len(q), 1, dtype=q.dtype, device=q.device)  # 1 + active specialists per frame
    for op in opinions:
        weight.index_add_(0, op.rows, torch.ones(len(op.rows), 1, dtype=q.dtype, device=q.device))
    probs = [op.log_probs.exp() for op in opinions]
    inside = []
    for op in opinions:
        mask = torch.zeros(q.shape[1], dtype=torch.bool, device=q.device)
        mask[op.cluster] = True
        inside.append(mask)
    steps, max_grad = 0, float("inf")
    while steps < max_steps and max_grad > tolerance:
        target = g.clone()  # W(q): the weighted targets of the surrogate
        for op, p, mask in zip(opinions, probs, inside):
            q_rows = q[op.rows]
            outside = q_rows.masked_fill(mask, 0.0)  # summed directly: exact when the cluster holds ~all the mass
            out_mass = outside.sum(1, keepdim=True).clamp_min(1e-300)
            spread = outside * (p[:, -1:] / out_mass)  # the dustbin's mass, shaped as q outside the cluster
            spread[:, op.cluster] = p[:, :-1]
            target.index_add_(0, op.rows, spread)
        max_grad = float((weight * q - target).abs().max())  # dL/dz at q: (1 + |A|) q - W(q)
        q = target / weight
        steps += 1
    return q.clamp_min(1e-300).log(), steps, max_grad
