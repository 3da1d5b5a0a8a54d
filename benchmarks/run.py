"""Run every benchmark, each in its own process, and print one table (+ JSON).

Usage::

    python -m benchmarks.run                 # all CPU benchmarks on the tiny data
    python -m benchmarks.run --only features dnn_train
    python -m benchmarks.run --gpu           # add the GPU benchmarks (needs CUDA)
    python -m benchmarks.run --only align --args "align=--from-exp /tmp/exp --subset dev-clean-2"

Each row also gets the benchmark process's peak RSS (``ru_maxrss`` of that child alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: name -> module; order = pipeline order.
CPU_BENCHMARKS = {
    "features": "benchmarks.bench_features",
    "align": "benchmarks.bench_align",
    "dnn_train": "benchmarks.bench_dnn_train",
    "conformer_train": "benchmarks.bench_conformer_train",
    "distill": "benchmarks.bench_distill",
    "datapath": "benchmarks.bench_datapath",
    "decode": "benchmarks.bench_decode",
    "integrity": "benchmarks.bench_integrity",
}
GPU_BENCHMARKS = {"dnn_train_gpu": "benchmarks.bench_dnn_train"}
#: Run only when named in ``--only``: they need a prepared real experiment (paths in ``--args``).
OPT_IN_BENCHMARKS = {"pocketsphinx_peer": "benchmarks.bench_pocketsphinx_peer"}
#: name -> arguments always given to that benchmark (``--args`` adds to them).
DEFAULT_ARGS = {"dnn_train_gpu": ["--device", "cuda"]}


def run_one(module: str, args: list[str] | None = None) -> dict:
    """Run ``python -m module *args`` and return its BENCH_RESULT dict plus its peak RSS in MB."""
    start = time.perf_counter()
    # the benchmarks' temporary experiment dirs (tempfile honours TMPDIR) go away with the child
    with tempfile.TemporaryDirectory(prefix="asr_kd_bench_") as tmp:
        proc = subprocess.Popen([sys.executable, "-m", module, *(args or [])], cwd=REPO, stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "TMPDIR": tmp})
        stdout = proc.stdout.read()
        # wait4 (not Popen.wait) so that the child's own resource usage comes back with its status.
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    result_lines = [line for line in stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if proc.returncode != 0 or not result_lines:
        return {"stage": module, "error": f"exit code {proc.returncode}"}
    result = json.loads(result_lines[-1][len("BENCH_RESULT "):])
    result["bench_wall_s"] = round(time.perf_counter() - start, 1)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return result


def format_table(results: list[dict]) -> str:
    lines = ["| stage | figures |", "|---|---|"]
    for r in results:
        figures = ", ".join(f"{k}={v}" for k, v in r.items() if k != "stage")
        lines.append(f"| {r['stage']} | {figures} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", help="benchmark names to run")
    parser.add_argument("--gpu", action="store_true", help="also run the GPU benchmarks")
    parser.add_argument("--args", nargs="+", default=[], metavar="NAME=ARGS",
                        help="extra command-line arguments of one benchmark, e.g. 'distill=--steps 10'")
    parser.add_argument("--out", type=Path, default=REPO / "exp" / "benchmarks.json")
    args = parser.parse_args()
    bench_args = {}
    for item in args.args:
        name, sep, rest = item.partition("=")
        if not sep:
            parser.error(f"--args takes NAME=ARGS, got {item!r}")
        bench_args[name] = shlex.split(rest)
    unknown = set(args.only or []) | set(bench_args)
    known = {**CPU_BENCHMARKS, **GPU_BENCHMARKS, **OPT_IN_BENCHMARKS}
    unknown -= set(known)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {list(known)}")
    selected = dict(CPU_BENCHMARKS)
    if args.gpu:
        selected.update(GPU_BENCHMARKS)
    if args.only:
        selected = {k: v for k, v in {**selected, **OPT_IN_BENCHMARKS}.items() if k in args.only}
    results = []
    for name, module in selected.items():
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.append(run_one(module, [*DEFAULT_ARGS.get(name, []), *bench_args.get(name, [])]))
    table = format_table(results)
    print(table)
    from asr_kd.utils.atomic import write_json

    write_json(args.out, {"machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "results": results})
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
