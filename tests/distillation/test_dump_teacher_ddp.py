"""``dump-teacher`` from several processes: disjoint shards, one store, equal to a single-process dump."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from asr_kd.cli import main as cli_main
from asr_kd.distillation.teacher_store import TeacherStore, TeacherStoreConfig, dump_teacher, dump_teacher_stores
from asr_kd.models import save
from asr_kd.utils.errors import AsrKdError

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


def test_processes_share_the_low_rank_basis_rank_0_fits(tmp_path, features, teacher):
    config = TeacherStoreConfig(1.0, NUM_SENONES, top_k=4, rank=6, temperatures=(1.0, 2.0), fit_frames=40)
    dump_teacher(teacher, features, tmp_path / "single", config, utts_per_shard=1, progress=False)
    stores = {tmp_path / "multi": config}
    barrier = threading.Barrier(2, timeout=60)
    results, errors = {}, []

    def rank(r: int) -> None:
        try:  # rank 1 reaches the barrier before rank 0 has saved the basis, and must wait for it
            results[r] = dump_teacher_stores(teacher, features, stores, utts_per_shard=1, progress=False, rank=r,
                                             world_size=2, barrier=barrier.wait)
        except Exception as err:  # noqa: BLE001 (re-raised in the test thread)
            errors.append(err)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results[0][tmp_path / "multi"].shards_written == 3 and results[1][tmp_path / "multi"].shards_written == 2
    single, multi = TeacherStore(tmp_path / "single"), TeacherStore(tmp_path / "multi")
    assert sorted(single.keys()) == sorted(multi.keys())
    for name in single.fields:
        for u in single.keys():  # noqa: SIM118 (TeacherStore is not iterable)
            assert np.array_equal(single.fields[name][u], multi.fields[name][u]), (name, u)


def test_several_processes_fitting_a_basis_need_a_barrier(tmp_path, features, teacher):
    config = TeacherStoreConfig(1.0, NUM_SENONES, top_k=4, rank=6, temperatures=(1.0, 2.0), fit_frames=40)
    with pytest.raises(AsrKdError, match="barrier"):
        dump_teacher_stores(teacher, features, {tmp_path / "s": config}, progress=False, rank=0, world_size=2)
