"""Two-process DistributedDataParallel training on CPU (gloo) through the real torchrun launcher."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import yaml

from asr_kd.models import load

GLOO_TEARDOWN_ABORT = "terminate called without an active exception"


def test_torchrun_two_process_gloo(tmp_path, make_config):
    config = make_config(tmp_path / "ddp", epochs=2, threads=1, batch_size=32, device="cpu")  # gloo, also on GPU hosts
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "asr_kd.training.trainer", "--config", str(path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    if proc.returncode != 0 and GLOO_TEARDOWN_ABORT in proc.stderr:
        # Rarely (about 1 run in 5 on a loaded 2-core machine) gloo aborts a rank while the process
        # group is torn down, after training finished; run once more from scratch.
        shutil.rmtree(tmp_path / "ddp")
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["epochs_run"] == 2
    # 12 training utterances (16 less the 4 held out) x 30-59 frames in minibatches of 32 over 2 ranks.
    frames = summary["history"][0]["step"] * 2 * 32
    assert 12 * 30 - 64 <= frames <= 12 * 60
    model, meta = load(tmp_path / "ddp" / "model.pt")
    assert meta["training"]["valid_frame_acc"] == summary["valid_frame_acc"]
    assert "validation frame accuracy" in proc.stdout
