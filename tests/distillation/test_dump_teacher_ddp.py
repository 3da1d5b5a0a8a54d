"""``dump-teacher`` from several processes: disjoint shards, one store, equal to a single-process dump."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from asr_kd.cli import main as cli_main
from asr_kd.distillation.teacher_store import TeacherStore, TeacherStoreConfig, dump_teacher, dump_teacher_stores
from asr_kd.models import save

NUM_SENONES = 24


def assert_same_store(a, b) -> None:
    sa, sb = TeacherStore(a), TeacherStore(b)
    assert sorted(sa.keys()) == sorted(sb.keys())
    for u in sa.keys():  # noqa: SIM118 (TeacherStore is not iterable)
        assert np.array_equal(sa.probs[u], sb.probs[u]) and np.array_equal(sa.ids[u], sb.ids[u])


def test_processes_write_disjoint_shards_of_one_store(tmp_path, features, teacher):
    config = TeacherStoreConfig(2.0, NUM_SENONES, 4)
    dump_teacher(teacher, features, tmp_path / "single", config, utts_per_shard=1, progress=False)
    stores = {tmp_path / "multi": config}
    s1 = dump_teacher_stores(teacher, features, stores, utts_per_shard=1, progress=False, rank=1, world_size=2)
    assert s1[tmp_path / "multi"].shards_written == 2  # shards 1 and 3 of 0..4
    assert sorted(p.name for p in (tmp_path / "multi" / "probs").glob("*.index.tsv")) == [
        "shard-00001.index.tsv", "shard-00003.index.tsv"]
    s0 = dump_teacher_stores(teacher, features, stores, utts_per_shard=1, progress=False, rank=0, world_size=2)
    assert s0[tmp_path / "multi"].shards_written == 3 and s0[tmp_path / "multi"].utterances == 5
    assert_same_store(tmp_path / "single", tmp_path / "multi")
    again = dump_teacher_stores(teacher, features, stores, utts_per_shard=1, progress=False)  # any world size resumes
    assert again[tmp_path / "multi"].shards_written == 0 and again[tmp_path / "multi"].shards_skipped == 5


def test_torchrun_dump_teacher_two_processes(tmp_path, tiny_exp_dir, teacher):
    teacher_file = tmp_path / "teacher.pt"
    save(teacher_file, teacher, {"feature": {"cmvn_mode": "speaker"}})
    args = ["distill", "dump-teacher", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir), "--subset", "train",
            "--temperature", "1", "2", "--top-k", "4", "--utts-per-shard", "1", "--device", "cpu"]
    assert cli_main([*args, "--out", str(tmp_path / "one_T{T}")]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "asr_kd.cli", *args, "--out", str(tmp_path / "two_T{T}")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("dump-teacher")]
    assert len(lines) == 2  # one summary per store, from rank 0 only
    assert all("5 utterances, 66 frames (5 shards written, 0 already done" in line and "2 processes" in line
               for line in lines)
    for t in ("1", "2"):
        assert_same_store(tmp_path / f"one_T{t}", tmp_path / f"two_T{t}")
