"""DNN training throughput (forward + backward + Adam step) against the machine's matmul ceiling.

Figures:
* ``frames_per_s``: training frames per second at the trainer's batch size, from the fastest
  of ``--steps`` steps (``frames_per_s_median``: from the median step, which shows the load).
* ``achieved_gflops`` = 6 x weight parameters x frames/s (2 FLOPs per multiply-add forward,
  twice that backward), and ``flop_efficiency`` = that / the square-matmul rate measured in the
  same process (goal >= 0.7 for the DNN on CPU).
* ``loader_overhead``: time of a step that gathers its context windows from a
  :class:`FrameTable` (the real training path) / a step on a preloaded batch (goal <= 1.10),
  fastest steps of each; ``gather_ms`` times the gather alone (fastest of 30) next to
  ``step_ms``, the load-proof view of the same overhead.

CPU: the ``mini`` preset on the tiny data's features. GPU (``--device cuda``): the paper's
8 x 2560 DNN with 26 frames x 40 log-mel in and 14,000 senones out, bf16 autocast.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

from benchmarks.common import best_time, emit, matmul_flops, random_target_table, tiny_exp


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default=None, help="default: mini on CPU, paper on CUDA")
    parser.add_argument("--num-senones", type=int, default=None, help="default: 1000 on CPU, 14000 on CUDA")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 256 on CPU, 4096 on CUDA")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from asr_kd.models import build

    cuda = args.device.startswith("cuda")
    preset = args.preset or ("paper" if cuda else "mini")
    num_senones = args.num_senones or (14000 if cuda else 1000)
    batch_size = args.batch_size or (4096 if cuda else 256)
    steps = args.steps or (50 if cuda else 30)
    device = torch.device(args.device)
    model = build("dnn", preset, input_dim=40, num_senones=num_senones).to(device)
    left, right = model.context
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, **({"fused": True} if cuda else {}))
    weights = sum(p.numel() for name, p in model.named_parameters() if name.endswith("weight"))
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    def step(windows: torch.Tensor, targets: torch.Tensor) -> None:
        with amp:
            loss = F.cross_entropy(model(windows), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    table = None if cuda else random_target_table(tiny_exp(), num_senones)
    if cuda:
        windows = torch.randn(batch_size, left + 1 + right, 40, device=device)
        targets = torch.randint(0, num_senones, (batch_size,), device=device)
    else:
        index = next(table.minibatches(batch_size, seed=0))
        windows, targets = table.context_windows(index, left, right), table.targets[index]

    def step_times(next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]], count: int) -> list[float]:
        """Seconds of each of ``count`` steps, batch preparation included."""
        times = []
        for _ in range(count):
            start = time.perf_counter()
            step(*next_batch())
            sync()
            times.append(time.perf_counter() - start)
        return times

    step_times(lambda: (windows, targets), 5)  # warm-up
    # the fastest step, like the fastest matmul of matmul_flops: what the code costs when other
    # processes leave the cores alone (the median shows what the load did)
    times = step_times(lambda: (windows, targets), steps)
    preloaded = min(times)
    result = {"stage": f"dnn_train[{preset}]", "device": str(device),
              "parameters": sum(p.numel() for p in model.parameters()), "batch_size": batch_size,
              "frames_per_s": round(batch_size / preloaded),
              "frames_per_s_median": round(batch_size / statistics.median(times))}
    achieved = 6 * weights * batch_size / preloaded
    if cuda:
        peak = matmul_flops("cuda", size=8192, dtype="bfloat16")
        result.update(achieved_tflops=round(achieved / 1e12, 1), bf16_matmul_tflops=round(peak / 1e12, 1),
                      flop_efficiency=round(achieved / peak, 3), gpu=torch.cuda.get_device_name())
    else:
        peak = matmul_flops("cpu")
        # full batches only (the last one of an epoch is smaller), repeated as needed
        batches = itertools.cycle([b for b in table.minibatches(batch_size, seed=1) if len(b) == batch_size])

        def gathered() -> tuple[torch.Tensor, torch.Tensor]:
            index = next(batches)
            return table.context_windows(index, left, right), table.targets[index]

        with_loader = min(step_times(gathered, steps))
        gather_ms = 1e3 * best_time(gathered, repeats=30)
        result.update(achieved_gflops=round(achieved / 1e9, 1), matmul_gflops=round(peak / 1e9, 1),
                      flop_efficiency=round(achieved / peak, 3), loader_overhead=round(with_loader / preloaded, 3),
                      step_ms=round(1e3 * preloaded, 1), gather_ms=round(gather_ms, 2),
                      threads=torch.get_num_threads())
    return result


if __name__ == "__main__":
    emit(main())
