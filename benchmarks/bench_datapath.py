"""Training data path: memory, bytes per frame and throughput of ``data.loader=memory`` vs ``stream``.

One configuration per process (so its peak RSS is its own), on a synthetic corpus in the
project's store formats (:mod:`benchmarks.synthetic_corpus`: float32 40-dim features, int32
senones, a top-20 teacher store), through the trainer's own code (``training_frames``,
``teacher_targets_for``, ``batcher_for``, ``DistillationObjective``):

* ``setup_s``, ``rss_setup_mb``: building the training frames (memory: the FrameTable and the
  in-RAM TeacherTargets; stream: the utterance indexes only).
* ``data_frames_per_s``: one whole epoch through the data path alone (chunk reads, CMVN,
  context windows, targets, teacher targets: every batch a training step would get), by the
  wall clock, with the trainer's prefetch thread reading the next chunk (``--read-threads``
  readers); ``data_cpu_frames_per_s``: the same by the CPU time of all the process's threads.
* ``step_frames_per_s``: distillation training steps (``--preset`` DNN, Adam, T = 2,
  alpha = 0.5) on one prebuilt batch; ``train_frames_per_s``: the same steps with every batch
  built by the data path (blocks of the two kinds interleaved, so machine load hits both).
* ``batch_overhead`` = step time with batch building / without - 1; ``datapath_overhead`` =
  data-path CPU seconds per frame over the whole epoch (chunk reads included) / training-step
  seconds per frame (goal <= 0.10 on CPU): the share of a core the data path takes from training.
* ``bytes_per_frame``: memory: bytes of the table + teacher tensors / frames; stream: device
  bytes per frame of a chunk (:meth:`FrameStream.bytes_per_frame`). ``peak_rss_mb``: the whole
  process (``ru_maxrss``), including ~0.5-0.8 GB of imported torch.

``--sweep`` runs several configurations, each in its own process (``benchmarks.run.run_one``),
and prints one table::

    python -m benchmarks.bench_datapath --sweep --exp /work/exp/datapath/synth \\
        --stream-hours 25 50 100 --memory-hours 6.25 12.5 25
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit

BLOCK = 10  # steps per timed block


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus_for(args: argparse.Namespace) -> tuple[Path, Path]:
    """``(exp dir, utterance list)`` of ``--hours``: from ``--exp``, or a fresh temporary corpus."""
    from benchmarks.synthetic_corpus import write_corpus

    if args.exp is None:
        exp = write_corpus(Path(tempfile.mkdtemp(prefix="asr_kd_bench_datapath_")), args.hours, [args.hours],
                           progress=False)
    else:
        exp = args.exp
    utts = exp / "utts" / f"{args.hours:g}h.txt"
    if not utts.exists():
        write_corpus(exp, args.hours, [args.hours])
    return exp, utts


def run_config(args: argparse.Namespace) -> dict:
    import torch

    from asr_kd.distillation.streamed_targets import teacher_targets_for
    from asr_kd.distillation.teacher_objectives import DistillationObjective
    from asr_kd.models import build
    from asr_kd.training.batches import batcher_for
    from asr_kd.training.config import DataConfig
    from asr_kd.training.data import training_frames
    from benchmarks.synthetic_corpus import NUM_SENONES, TEMPERATURE, TRAIN

    torch.set_num_threads(args.threads)
    exp, utt_list = corpus_for(args)
    utt_ids = utt_list.read_text().split()
    data = DataConfig(exp=str(exp), train_subset=TRAIN, loader=args.loader,
                      stream_chunk_frames=args.chunk_frames, stream_dtype=args.dtype)
    cpu = torch.device("cpu")
    rss_start = rss_mb()
    start = time.perf_counter()
    frames = training_frames(data, utt_ids, 0, 1, cpu, NUM_SENONES)
    if args.loader == "stream":
        frames.read_threads = args.read_threads
    teacher = teacher_targets_for(frames, exp / "teacher" / TRAIN)
    setup_s = time.perf_counter() - start
    if args.loader == "memory":
        tensors = [frames.feats, frames.targets, frames.utt_start, frames.utt_end, teacher.probs, teacher.ids]
        bytes_per_frame = sum(t.numel() * t.element_size() for t in tensors) / len(frames)
    else:
        bytes_per_frame = frames.bytes_per_frame()
    rss_setup = rss_mb()

    torch.manual_seed(0)
    model = build("dnn", args.preset, input_dim=frames.dim, num_senones=NUM_SENONES)
    batcher = batcher_for(model, frames, args.batch_size, args.batch_size)
    objective = DistillationObjective(TEMPERATURE, 0.5, teacher)

    def with_teacher(batch: dict) -> dict:
        if "teacher" not in batch:  # memory: what DistillationObjective gathers from the in-RAM table
            batch["teacher"] = teacher.gather(batch["frame_index"])
        return batch

    plan = batcher.plan(seed=1)
    if args.max_batches:
        plan = plan[: args.max_batches]
    start, cpu_start = time.perf_counter(), time.process_time()
    frames_seen = sum(len(with_teacher(batcher.build(spec, cpu))["targets"]) for spec in plan)
    data_s, data_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(batch: dict) -> None:
        loss, _ = objective(batcher.logits(model, batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train_plan = iter(batcher.plan(seed=2))
    fixed = with_teacher(batcher.build(next(train_plan), cpu))  # also loads the first chunk, outside the timing
    for _ in range(3):
        step(fixed)
    if args.loader == "stream":
        frames.drain()  # the next chunk's background read must not run during the timed steps
    prebuilt = built = 0.0
    for _ in range(max(1, args.train_steps // BLOCK)):
        t0 = time.perf_counter()
        for _ in range(BLOCK):
            step(fixed)
        t1 = time.perf_counter()
        for _ in range(BLOCK):
            step(with_teacher(batcher.build(next(train_plan), cpu)))
        prebuilt, built = prebuilt + t1 - t0, built + time.perf_counter() - t1
    steps = max(1, args.train_steps // BLOCK) * BLOCK
    step_fps = steps * args.batch_size / prebuilt
    data_cpu_fps = frames_seen / data_cpu_s
    return {"stage": f"datapath[{args.loader}{'' if args.loader == 'memory' else f',{args.dtype}'}]",
            "hours": args.hours, "frames": len(frames), "utterances": len(utt_ids),
            "chunk_frames": args.chunk_frames if args.loader == "stream" else None,
            "bytes_per_frame": round(bytes_per_frame, 1), "setup_s": round(setup_s, 1),
            "data_frames": frames_seen, "data_frames_per_s": round(frames_seen / data_s),
            "data_cpu_frames_per_s": round(data_cpu_fps),
            "step_frames_per_s": round(step_fps), "train_frames_per_s": round(steps * args.batch_size / built),
            "batch_overhead": round(built / prebuilt - 1, 3), "datapath_overhead": round(step_fps / data_cpu_fps, 4),
            "rss_start_mb": round(rss_start), "rss_setup_mb": round(rss_setup), "peak_rss_mb": round(rss_mb()),
            "threads": args.threads, "read_threads": args.read_threads if args.loader == "stream" else None,
            "batch_size": args.batch_size, "preset": args.preset}


def sweep(args: argparse.Namespace) -> list[dict]:
    """Each configuration in its own process; prints a markdown table."""
    from benchmarks.run import run_one
    from benchmarks.synthetic_corpus import write_corpus

    if args.exp is None:
        raise SystemExit("--sweep needs --exp (the corpus is kept there between configurations)")
    hours = sorted({*args.stream_hours, *args.memory_hours})
    write_corpus(args.exp, max(hours), hours)
    common = ["--exp", str(args.exp), "--batch-size", str(args.batch_size), "--train-steps", str(args.train_steps),
              "--preset", args.preset, "--threads", str(args.threads), "--read-threads", str(args.read_threads)]
    configs = [["--loader", "memory", "--hours", f"{h:g}"] for h in args.memory_hours]
    configs += [["--loader", "stream", "--hours", f"{h:g}", "--chunk-frames", str(args.chunk_frames), "--dtype",
                 args.dtype] for h in args.stream_hours]
    results = []
    for config in configs:
        result = run_one("benchmarks.bench_datapath", [*config, *common])
        results.append(result)
        print(result, flush=True)
    keys = ["stage", "hours", "frames", "bytes_per_frame", "setup_s", "data_frames_per_s", "data_cpu_frames_per_s",
            "step_frames_per_s", "train_frames_per_s", "batch_overhead", "datapath_overhead", "rss_setup_mb",
            "peak_rss_mb"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in results:
        print("| " + " | ".join(str(r.get(k, r.get("error", ""))) for k in keys) + " |")
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", type=Path, default=None,
                        help="synthetic corpus dir (benchmarks.synthetic_corpus; written if missing); "
                        "default: a temporary one of --hours")
    parser.add_argument("--hours", type=float, default=1.0, help="training hours (the first H hours of the corpus)")
    parser.add_argument("--loader", choices=("memory", "stream"), default="stream")
    parser.add_argument("--chunk-frames", type=int, default=2_000_000)
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training steps")
    parser.add_argument("--read-threads", type=int, default=1, help="stream: threads reading a chunk")
    parser.add_argument("--max-batches", type=int, default=0, help="cut the data-path epoch (0 = whole epoch)")
    parser.add_argument("--sweep", action="store_true", help="run the configurations below, one process each")
    parser.add_argument("--stream-hours", type=float, nargs="*", default=[25, 50, 100])
    parser.add_argument("--memory-hours", type=float, nargs="*", default=[6.25, 12.5, 25])
    parser.add_argument("--out", type=Path, help="--sweep: also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.sweep:
        results = sweep(args)
        if args.out:
            from asr_kd.utils.atomic import write_json

            write_json(args.out, {"command": "bench_datapath --sweep", "results": results})
        return {"stage": "datapath sweep", "configs": len(results)}
    return run_config(args)


if __name__ == "__main__":
    emit(main())
