"""Combining a generalist with specialists: frames per second and the gradient left, EM vs L-BFGS.

Synthetic, paper-like sizes (no data needed): ``--frames`` frames of a generalist over
``--num-senones`` senones (random logits scaled so that its top senone holds ~50-90% of the mass),
``--clusters`` disjoint clusters of ``--cluster-size`` senones, and for each frame the specialists
the generalist's top ``--top-n`` senones select (random, confident distributions over their
cluster + dustbin). Each method of :func:`asr_kd.distillation.specialists.combine.combine` runs on
chunks of ``--chunk-frames`` frames with the same ``--max-steps`` and ``--tolerance``; reported:
frames per second (fastest of ``--repeats``), iterations, the largest gradient entry left and the
mean objective per frame (lower is better; the same objective for both methods).

Not in ``benchmarks.run``'s default set: ``python -m benchmarks.bench_specialists``.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import emit


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4096)
    parser.add_argument("--num-senones", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--cluster-size", type=int, default=40)
    parser.add_argument("--top-n", type=int, default=1)
    parser.add_argument("--chunk-frames", type=int, default=4096)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    from asr_kd.distillation.specialists.combine import (
        METHODS,
        Opinion,
        active_specialists,
        combination_loss,
        combine,
    )

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    if args.clusters * args.cluster_size >= args.num_senones:
        raise SystemExit("--clusters x --cluster-size must leave senones outside every cluster")
    log_g = torch.log_softmax(torch.randn(args.frames, args.num_senones, generator=gen) * 4, -1)
    perm = torch.randperm(args.num_senones, generator=gen)
    clusters = [perm[m * args.cluster_size:(m + 1) * args.cluster_size] for m in range(args.clusters)]
    membership = torch.zeros(args.clusters, args.num_senones, dtype=torch.bool)
    for m, c in enumerate(clusters):
        membership[m, c] = True
    active = active_specialists(log_g, membership, args.top_n)
    opinions = []
    for m, cluster in enumerate(clusters):
        rows = torch.nonzero(active[:, m]).squeeze(1)
        logits = torch.randn(len(rows), args.cluster_size + 1, generator=gen) * 3
        opinions.append(Opinion(rows, cluster, torch.log_softmax(logits, -1)))

    def run(method: str) -> tuple[torch.Tensor, int, float]:
        log_q, steps, max_grad = torch.empty_like(log_g), 0, 0.0
        for start in range(0, args.frames, args.chunk_frames):
            stop = min(start + args.chunk_frames, args.frames)
            chunk = []
            for op in opinions:
                keep = (op.rows >= start) & (op.rows < stop)
                chunk.append(Opinion(op.rows[keep] - start, op.cluster, op.log_probs[keep]))
            result = combine(log_g[start:stop], chunk, args.max_steps, args.tolerance, method)
            log_q[start:stop] = result.log_q
            steps, max_grad = max(steps, result.steps), max(max_grad, result.max_grad)
        return log_q, steps, max_grad

    result: dict = {"frames": args.frames, "num_senones": args.num_senones, "clusters": args.clusters,
                    "cluster_size": args.cluster_size, "mean_active": float(active.sum(1).float().mean()),
                    "max_steps": args.max_steps, "tolerance": args.tolerance}
    start_loss = float(combination_loss(log_g, log_g, opinions).mean())
    result["objective_at_generalist"] = start_loss
    for method in METHODS:
        best = float("inf")
        for _ in range(max(args.repeats, 1)):
            t0 = time.perf_counter()
            log_q, steps, max_grad = run(method)
            best = min(best, time.perf_counter() - t0)
        result[f"{method}_frames_per_s"] = args.frames / best
        result[f"{method}_steps"] = steps
        result[f"{method}_max_grad"] = max_grad
        result[f"{method}_objective"] = float(combination_loss(log_q.double(), log_g.double(), [
            Opinion(op.rows, op.cluster, op.log_probs.double()) for op in opinions]).mean())
    for key, value in result.items():
        print(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
    emit(result)
    return result


if __name__ == "__main__":
    main()
