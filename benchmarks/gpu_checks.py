"""Every GPU figure of issue 16 in one short run (or a tiny CPU dry run of the same code).

On a CUDA machine (about 6 minutes, see ``--budget-s``)::

    python -m benchmarks.gpu_checks --out exp/gpu_checks

    1. corpus      a synthetic corpus in the project's store formats: ``--hours`` (14 h = 5M
                   frames) of 40-dim float32 features, ``--senones`` (8000, the 960 h recipe's)
                   senone targets, a top-20 teacher store (:mod:`benchmarks.synthetic_corpus`)
    2. loop        the paper DNN (8 x 2560, 26 frames, bf16 autocast, the recipe's SGD) stepping
                   in one process with no host syncs, on batches from: device-resident random
                   windows (the ceiling: ``bench_dnn_train``'s setting); the frame stream with
                   the part resident on the GPU; the stream in 2M-frame chunks (chunk reads
                   included); the in-memory FrameTable (CPU gather + copy); the resident stream
                   with the distillation loss on the teacher arrays of the batch.
                   Goal: stream rate >= 0.8 x the device-resident rate.
    3. trainer     one epoch of ``asr_kd.training.trainer`` (recipes/librispeech/conf/dnn_paper.yaml)
                   per loader, and ``asr-kd distill train`` on the stream: ``train_frames_per_s``
                   of the real training loop (it reads the loss back every step), wall time, peak RSS
    4. ddp         the trainer under ``torchrun --nproc_per_node <GPUs>`` (NCCL) on the stream, if
                   there are >= 2 GPUs: summed frames/s vs one GPU
    5. ensemble    ``asr-kd train-ensemble --members 10`` with the mini recipe's config
                   (recipes/mini_librispeech/conf/dnn_mini.yaml) on a synthetic corpus of the mini
                   recipe's size (2.7 h, 1000 senones) on the GPU: wall time

``--parts`` picks some of them. Results go to ``<out>/gpu_checks.json`` after every part (a run
cut short keeps what it measured) and a table is printed at the end. ``--dry-run`` runs every
part on the CPU at toy sizes (tiny models, a 2-process gloo DDP, a 2-member ensemble) so the
script is known to work before a GPU session uses it; without ``--dry-run`` and without CUDA it
stops with a clear message.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAPER_CONF = REPO / "recipes" / "librispeech" / "conf" / "dnn_paper.yaml"
MINI_CONF = REPO / "recipes" / "mini_librispeech" / "conf" / "dnn_mini.yaml"
PARTS = ("corpus", "loop", "trainer", "ddp", "ensemble")


class Budget:
    """Wall-clock budget of the run: parts past it are skipped, subprocesses get what is left."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def run_command(command: list[str], timeout: float, log: Path) -> dict:
    """Run ``command`` (stdout+stderr to ``log``); its exit code, wall seconds and peak RSS (MB)."""
    start = time.perf_counter()
    deadline = time.monotonic() + max(timeout, 1)
    with open(log, "w") as f:
        proc = subprocess.Popen(command, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        while True:  # wait4, not Popen.wait: the child's own resource usage comes back with its status
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    out = {"exit_code": code, "wall_s": round(time.perf_counter() - start, 1), "log": log.name,
           "peak_rss_mb": round(usage.ru_maxrss / 1024)}
    if code != 0:
        out["tail"] = log.read_text()[-1500:]
    return out


def utterance_list(exp: Path, sizes: dict) -> Path:
    """All training utterances of the corpus (``write_corpus`` writes the list of its own hours)."""
    return exp / "utts" / f"{sizes['hours']:g}h.txt"


def loop_rates(exp: Path, sizes: dict, device: str, steps: int) -> dict:
    """Frames/s of training steps without host syncs, per batch source (part 2)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from asr_kd.distillation.loss import distillation_loss
    from asr_kd.distillation.streamed_targets import teacher_targets_for
    from asr_kd.features.frame_stream import read_frames
    from asr_kd.models import build
    from asr_kd.training.batches import batcher_for
    from asr_kd.training.config import load_config
    from asr_kd.training.data import training_frames
    from asr_kd.training.trainer import autocast, make_optimizer
    from benchmarks.synthetic_corpus import TRAIN, validation_overrides

    dev = torch.device(device)
    config = load_config(PAPER_CONF, [f"data.exp={exp}", f"data.train_subset={TRAIN}",
                                      *validation_overrides(exp), f"model.preset={sizes['preset']}",
                                      f"train.batch_size={sizes['batch']}"])
    utt_ids = utterance_list(exp, sizes).read_text().split()
    torch.manual_seed(0)
    model = build("dnn", sizes["preset"], input_dim=40, num_senones=sizes["senones"]).to(dev)
    optimizer = make_optimizer(model.parameters(), config.optim)
    left, right = model.context
    batch_size = sizes["batch"]

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step(batch: dict, distill: bool) -> None:
        with autocast(dev, config.train.amp):
            logits = model(batch["inputs"])
        if distill:
            loss = distillation_loss(logits.float(), batch["teacher"], batch["targets"], 2.0, 0.5).loss
        else:
            loss = F.cross_entropy(logits.float(), batch["targets"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def rate(next_batch, distill: bool = False) -> float:
        for _ in range(5):  # warm-up: kernels, the resident load, the first chunk
            step(next_batch(), distill)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step(next_batch(), distill)
        sync()
        return round(steps * batch_size / (time.perf_counter() - start))

    out = {}
    probe_data = config.data
    probe_data.loader = "stream"
    probe = training_frames(probe_data, utt_ids, 0, 1, torch.device("cpu"), sizes["senones"], prefetch=False)
    teacher_targets_for(probe, exp / "teacher" / TRAIN)
    probe_utts = np.arange(min(len(utt_ids), 1000))
    for threads in sorted({1, probe.read_threads}):  # host read rate of a chunk: features, targets, teacher arrays
        start = time.perf_counter()
        read = read_frames(probe.corpus, probe_utts, "float16", threads)
        out[f"read_frames_per_s_{threads}_threads"] = round(len(read.feats) / (time.perf_counter() - start))
    del probe, read
    windows = torch.randn(batch_size, left + 1 + right, 40, device=dev)
    targets = torch.randint(0, sizes["senones"], (batch_size,), device=dev)
    out["synthetic_device_resident"] = rate(lambda: {"inputs": windows, "targets": targets})

    def source(loader: str, chunk_frames: int, teacher: bool = False):
        data = config.data
        data.loader, data.stream_chunk_frames = loader, chunk_frames
        frames = training_frames(data, utt_ids, 0, 1, dev, sizes["senones"])
        targets_of = teacher_targets_for(frames, exp / "teacher" / TRAIN) if teacher else None
        batcher = batcher_for(model, frames, batch_size, batch_size)
        specs = (spec for epoch in itertools.count() for spec in batcher.plan(seed=epoch))

        def next_batch() -> dict:
            batch = batcher.build(next(specs), dev)
            if teacher and "teacher" not in batch:  # memory loader: the in-RAM table
                batch["teacher"] = targets_of.gather(batch["frame_index"]).to(dev)
            return batch

        return next_batch

    out["stream_resident"] = rate(source("stream", 0))
    # chunks a third of the timed frames: the timing crosses chunk boundaries (reads cost the same per frame)
    loop_chunk = steps * batch_size // 3
    out["stream_chunked"] = rate(source("stream", loop_chunk))
    out["memory_table"] = rate(source("memory", 0))
    out["stream_resident_distill"] = rate(source("stream", 0, teacher=True), distill=True)
    base = out.pop("synthetic_device_resident")
    out.update({f"{k}_over_synthetic": round(v / base, 3) for k, v in list(out.items()) if not k.startswith("read")})
    out["synthetic_device_resident"] = base
    out.update(batch_size=batch_size, senones=sizes["senones"], preset=sizes["preset"], steps=steps, device=device,
               stream_chunked_chunk_frames=loop_chunk)
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
        out["max_memory_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def trainer_overrides(exp: Path, out_dir: Path, sizes: dict, device: str) -> list[str]:
    from benchmarks.synthetic_corpus import TRAIN, validation_overrides

    return [f"out_dir={out_dir}", f"data.exp={exp}", f"data.train_subset={TRAIN}", *validation_overrides(exp),
            f"model.preset={sizes['preset']}", f"model.num_senones={sizes['senones']}", "train.epochs=1",
            "train.patience=0", "train.checkpoint_every=0", "train.progress=false", f"train.device={device}",
            f"train.batch_size={sizes['batch']}", f"train.threads={sizes['threads']}"]


def summary_of(out_dir: Path, result: dict) -> dict:
    path = out_dir / "summary.json"
    if result["exit_code"] == 0 and path.exists():
        history = json.loads(path.read_text())["history"][0]
        result.update(train_frames_per_s=round(history["train_frames_per_s"]), epoch_wall_s=round(history["wall_s"], 1))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="work and results directory")
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: check that the script works")
    parser.add_argument("--hours", type=float, default=14.0, help="synthetic training hours for parts 2-4")
    parser.add_argument("--senones", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=2048, help="frames per step (the recipe's, per GPU)")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per batch source in part 2")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--ensemble-jobs", type=int, default=5, help="members trained side by side on the GPU")
    parser.add_argument("--budget-s", type=float, default=480)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="run only these parts (later parts need the corpus)")
    args = parser.parse_args(argv)

    import torch

    from benchmarks.synthetic_corpus import TRAIN, validation_overrides, write_corpus

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_checks: no CUDA device; run with --dry-run to check the script on the CPU")
    budget = Budget(args.budget_s)
    device = "cpu" if args.dry_run else "cuda"
    if args.dry_run:
        sizes = {"preset": "tiny", "senones": 50, "top_k": 5, "batch": 256, "chunk": 4000, "hours": 0.05,
                 "mini_hours": 0.03, "mini_preset": "tiny", "members": 2, "steps": 5, "threads": 1}
    else:
        sizes = {"preset": "paper", "senones": args.senones, "top_k": 20, "batch": args.batch_size,
                 "chunk": 2_000_000, "hours": args.hours, "mini_hours": 2.7, "mini_preset": "mini",
                 "members": args.members, "steps": args.steps, "threads": 0}
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"command": " ".join(["python -m benchmarks.gpu_checks", *(argv or sys.argv[1:])]),
                     "dry_run": args.dry_run, "cuda_devices": torch.cuda.device_count()}

    def save() -> None:
        (args.out / "gpu_checks.json").write_text(json.dumps(results, indent=2))

    def part(name: str, fn) -> None:
        if name not in args.parts:
            return
        if budget.left() <= 10:
            results[name] = {"skipped": "time budget spent"}
        else:
            start = time.perf_counter()
            try:
                results[name] = fn()
            except Exception as err:  # one failing part must not lose the others' figures
                results[name] = {"error": f"{type(err).__name__}: {err}"}
            results[name]["part_wall_s"] = round(time.perf_counter() - start, 1)
        print(f"gpu_checks {name}: {results[name]}", flush=True)
        save()

    jobs = os.cpu_count() or 1
    exp, mini = args.out / "corpus", args.out / "mini_corpus"

    def corpus() -> dict:
        write_corpus(exp, sizes["hours"], [sizes["hours"]], num_senones=sizes["senones"], top_k=sizes["top_k"],
                     jobs=jobs, progress=False)
        write_corpus(mini, sizes["mini_hours"], num_senones=1000, teacher=False, jobs=jobs, progress=False)
        utterances = len(utterance_list(exp, sizes).read_text().split())
        return {"hours": sizes["hours"], "utterances": utterances, "mini_hours": sizes["mini_hours"]}

    part("corpus", corpus)
    part("loop", lambda: loop_rates(exp, sizes, device, sizes["steps"]))

    python = [sys.executable]
    trainer = [*python, "-m", "asr_kd.training.trainer", "--config", str(PAPER_CONF)]

    def trainer_runs() -> dict:
        out = {}
        for name, extra in (("stream_resident", ["data.loader=stream", "data.stream_chunk_frames=0"]),
                            ("stream_chunked_2M", ["data.loader=stream", f"data.stream_chunk_frames={sizes['chunk']}"]),
                            ("memory", ["data.loader=memory"])):
            run_dir = args.out / f"train_{name}"
            result = run_command([*trainer, *trainer_overrides(exp, run_dir, sizes, device), *extra],
                                 budget.left(), args.out / f"train_{name}.log")
            out[name] = summary_of(run_dir, result)
        run_dir = args.out / "distill_stream_resident"
        command = [*python, "-m", "asr_kd.cli", "distill", "train", "--config", str(PAPER_CONF), "--store",
                   str(exp / "teacher" / TRAIN), "--temperature", "2", "--alpha", "0.5",
                   *trainer_overrides(exp, run_dir, sizes, device), "data.loader=stream", "data.stream_chunk_frames=0"]
        out["distill_stream_resident"] = summary_of(run_dir, run_command(command, budget.left(),
                                                                         args.out / "distill.log"))
        return out

    part("trainer", trainer_runs)

    def ddp() -> dict:
        gpus = torch.cuda.device_count()
        if not args.dry_run and gpus < 2:
            return {"skipped": f"{gpus} GPU: DDP with NCCL needs >= 2 (one process per GPU)"}
        procs = 2 if args.dry_run else gpus
        run_dir = args.out / "train_ddp"
        command = [*python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
                   "-m", "asr_kd.training.trainer", "--config", str(PAPER_CONF),
                   *trainer_overrides(exp, run_dir, sizes, device), "data.loader=stream", "data.stream_chunk_frames=0"]
        result = summary_of(run_dir, run_command(command, budget.left(), args.out / "train_ddp.log"))
        result.update(processes=procs, backend="gloo" if args.dry_run else "nccl")
        single = results.get("trainer", {}).get("stream_resident", {}).get("train_frames_per_s")
        if single and "train_frames_per_s" in result:
            result["speedup_over_one"] = round(result["train_frames_per_s"] / single, 2)
        return result

    part("ddp", ddp)

    def ensemble() -> dict:
        run_dir = args.out / "ensemble"
        command = [*python, "-m", "asr_kd.cli", "train-ensemble", "--config", str(MINI_CONF), "--members",
                   str(sizes["members"]), "--jobs", str(args.ensemble_jobs if not args.dry_run else 1),
                   f"out_dir={run_dir}", f"data.exp={mini}", f"data.train_subset={TRAIN}",
                   *validation_overrides(mini), "model.num_senones=1000", f"train.device={device}",
                   f"model.preset={sizes['mini_preset']}", "train.progress=false"]
        if args.dry_run:
            command += ["train.epochs=1", "model.overrides={}"]
        result = run_command(command, budget.left(), args.out / "ensemble.log")
        summary = run_dir / "ensemble_summary.json"
        if result["exit_code"] == 0 and summary.exists():
            members = json.loads(summary.read_text())["members"]
            result.update(members=len(members), valid_frame_acc=[round(m["valid_frame_acc"], 4) for m in members])
        return result

    part("ensemble", ensemble)
    print_table(results)
    return results


def print_table(results: dict) -> None:
    rows = []
    for name, value in results.get("loop", {}).items():
        if isinstance(value, (int, float)) and name not in ("steps", "batch_size", "senones", "part_wall_s"):
            rows.append((f"loop {name}", value))
    for name, value in results.get("trainer", {}).items():
        if isinstance(value, dict):
            rows.append((f"trainer {name} frames/s", value.get("train_frames_per_s", value.get("tail", "-"))))
            rows.append((f"trainer {name} peak RSS MB", value.get("peak_rss_mb", "-")))
    for name in ("ddp", "ensemble"):
        for key, value in results.get(name, {}).items():
            if key in ("train_frames_per_s", "speedup_over_one", "wall_s", "skipped", "processes", "members", "error"):
                rows.append((f"{name} {key}", value))
    print("| figure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
