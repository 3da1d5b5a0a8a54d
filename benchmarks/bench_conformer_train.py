"""Conformer training throughput (forward + backward + Adam step) on whole-utterance batches.

Figures:
* ``frames_per_s``: valid (unpadded) training frames per second, batches of at most
  ``--max-frames`` padded frames built by the trainer's :class:`UtteranceBatcher`.
* ``achieved_gflops``: FLOPs of the training steps counted by ``torch.utils.flop_counter``
  (matmuls, convolutions and attention, forward + backward; element-wise ops are not counted)
  / their time (each batch's fastest step of ``--repeats`` passes, like the fastest matmul of
  the ceiling: robust to other processes' load), and ``flop_efficiency`` = that / the
  square-matmul rate measured in the same process. A conformer is far from matmul-bound on
  CPU (small d_model, depthwise convolution, softmax, layer norms), so this ratio is expected
  to be well below the DNN's.
* ``loader_overhead``: time of ``--steps`` steps that build their batches from the frame table
  (padding, masks: the real training path) / the same steps on the same batches built
  beforehand (goal <= 1.10).

Default: the ``mini`` preset on the tiny data's features with random targets.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable

from benchmarks.common import emit, matmul_flops, random_target_table, tiny_exp


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--num-senones", type=int, default=1000)
    parser.add_argument("--max-frames", type=int, default=4000, help="padded frames per batch")
    parser.add_argument("--steps", type=int, default=4, help="batches timed")
    parser.add_argument("--repeats", type=int, default=2,
                        help="passes over the batches; each batch's fastest step counts")
    args = parser.parse_args(argv)

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from asr_kd.models import build
    from asr_kd.training.batches import UtteranceBatcher
    from asr_kd.training.objectives import CrossEntropyObjective

    device = torch.device("cpu")
    model = build("conformer", args.preset, input_dim=40, num_senones=args.num_senones)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    objective = CrossEntropyObjective()
    batcher = UtteranceBatcher(random_target_table(tiny_exp(), args.num_senones), args.max_frames)
    plan = batcher.plan(seed=0)

    def step(batch: dict) -> int:
        loss, _ = objective(batcher.logits(model, batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(batch["targets"])

    specs = [plan[i % len(plan)] for i in range(args.steps)]
    preloaded = [batcher.build(spec, device) for spec in specs]
    # the counted pass doubles as warm-up (allocator, lazy initialisation)
    with FlopCounterMode(display=False) as counter:
        frames = sum(step(batch) for batch in preloaded)

    def fastest_pass(next_batches: Callable[[], Iterable[dict]]) -> float:
        """Sum over the batches of each batch's fastest step in ``--repeats`` passes (seconds)."""
        best = [float("inf")] * len(specs)
        for _ in range(args.repeats):
            batches = iter(next_batches())
            for i in range(len(specs)):
                start = time.perf_counter()
                step(next(batches))
                best[i] = min(best[i], time.perf_counter() - start)
        return sum(best)

    preloaded_s = fastest_pass(lambda: preloaded)
    with_loader_s = fastest_pass(lambda: (batcher.build(spec, device) for spec in specs))
    achieved = counter.get_total_flops() / preloaded_s
    peak = matmul_flops("cpu")
    return {
        "stage": f"conformer_train[{args.preset}]",
        "parameters": sum(p.numel() for p in model.parameters()),
        "max_frames": args.max_frames,
        "frames_per_s": round(frames / preloaded_s),
        "achieved_gflops": round(achieved / 1e9, 1),
        "matmul_gflops": round(peak / 1e9, 1),
        "flop_efficiency": round(achieved / peak, 3),
        "loader_overhead": round(with_loader_s / preloaded_s, 3),
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    emit(main())
