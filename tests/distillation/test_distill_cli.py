import json

import pytest

from asr_kd.cli import main as _run
from asr_kd.models import save

NUM_SENONES = 24


@pytest.fixture
def teacher_file(tmp_path, teacher):
    path = tmp_path / "teacher.pt"
    save(path, teacher, {"feature": {"cmvn_mode": "speaker"}})
    return path


def _train_overrides(exp, out_dir):
    """Student settings; one training utterance is the validation split (the trainer reads no dev)."""
    split = exp / "splits" / "train"
    split.mkdir(parents=True, exist_ok=True)
    (split / "valid.txt").write_text("s3-c-0001\n")
    return [f"out_dir={out_dir}", f"data.exp={exp}", "data.train_subset=train",
            "model.arch=dnn", "model.preset=tiny", f"model.num_senones={NUM_SENONES}", "train.epochs=1",
            "train.batch_size=16", "train.device=cpu", "train.progress=false", "train.threads=1"]


def test_dump_inspect_and_topk_mass(tmp_path, tiny_exp_dir, teacher_file, capsys):
    store = tmp_path / "store"
    argv = ["distill", "dump-teacher", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir), "--subset",
            "train", "--out", str(store), "--temperature", "2", "--top-k", "4", "--utts-per-shard", "2"]
    assert _run(argv) == 0
    assert "5 utterances, 66 frames (3 shards written, 0 already done" in capsys.readouterr().out
    assert _run(argv) == 0
    assert "(0 shards written, 3 already done" in capsys.readouterr().out
    assert _run(["distill", "inspect", "--store", str(store)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["frames"], info["top_k"], info["temperature"], info["num_senones"]) == (66, 4, 2.0, NUM_SENONES)
    assert 0 < info["mean_kept_mass"] < 1 and info["fraction_of_dense"] < 1  # .npy headers weigh on 66 frames
    assert _run(["distill", "topk-mass", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir), "--subset",
                 "train", "--temperature", "1", "2", "--top-k", "1", "4", "--out", str(tmp_path / "m.json")]) == 0
    mass = json.loads((tmp_path / "m.json").read_text())["mean_top_k_mass"]
    assert mass["2.0"]["4"] == pytest.approx(info["mean_kept_mass"], abs=2e-3)  # same teacher, T and k
    assert mass["1.0"]["1"] > mass["2.0"]["1"]  # softer at higher T
    assert _run(["distill", "topk-mass", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir), "--subset",
                 "train", "--top-k", "25"]) == 2
    assert "--top-k must lie in 1..24" in capsys.readouterr().err


def test_one_dump_writes_a_store_per_temperature_and_k(tmp_path, tiny_exp_dir, teacher_file, capsys):
    base = ["distill", "dump-teacher", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir), "--subset", "train"]
    out = str(tmp_path / "T{T}_k{k}")
    assert _run([*base, "--out", out, "--temperature", "1", "2.5", "--top-k", "3", "dense"]) == 0
    assert sorted(p.name for p in tmp_path.glob("T*")) == ["T1_k3", "T1_kdense", "T2.5_k3", "T2.5_kdense"]
    assert capsys.readouterr().out.count("dump-teacher train: 5 utterances, 66 frames (1 shards written") == 4
    assert _run([*base, "--out", str(tmp_path / "same"), "--temperature", "1", "2"]) == 2
    assert "add the {T} and {k} placeholders" in capsys.readouterr().err
    assert _run([*base, "--out", str(tmp_path / "{t}"), "--temperature", "1"]) == 2
    assert "only the {T} and {k} placeholders" in capsys.readouterr().err


def test_train_student_from_store_and_online(tmp_path, tiny_exp_dir, teacher_file, capsys):
    store = tmp_path / "store"
    assert _run(["distill", "dump-teacher", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir),
                 "--subset", "train", "--out", str(store), "--temperature", "2", "--top-k", "4"]) == 0
    out = tmp_path / "student"
    assert _run(["distill", "train", "--store", str(store), "--temperature", "2", "--alpha", "0.5",
                 *_train_overrides(tiny_exp_dir, out)]) == 0
    assert "validation frame accuracy" in capsys.readouterr().out
    assert (out / "model.pt").exists()
    assert json.loads((out / "distillation.json").read_text())["store"] == str(store)
    log = (out / "log.csv").read_text()
    assert "train_soft_ce" in log and "train_hard_ce" in log and "train_teacher_agree" in log

    online = tmp_path / "online"
    assert _run(["distill", "train", "--temperature", "2", "--online-teacher", str(teacher_file),
                 "--online-teacher", str(teacher_file), *_train_overrides(tiny_exp_dir, online)]) == 0
    assert (online / "model.pt").exists()
    assert json.loads((online / "distillation.json").read_text())["online_teacher"] == [str(teacher_file)] * 2


def test_conformer_student_of_a_dnn_teachers_store(tmp_path, tiny_exp_dir, teacher_file, capsys):
    """The reverse of E5: a whole-utterance student reads the windowed teacher's store by frame index."""
    store = tmp_path / "store"
    assert _run(["distill", "dump-teacher", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir),
                 "--subset", "train", "--out", str(store), "--temperature", "2", "--top-k", "dense"]) == 0
    out = tmp_path / "conformer_student"
    student = [o for o in _train_overrides(tiny_exp_dir, out) if not o.startswith("model.arch=")]
    assert _run(["distill", "train", "--store", str(store), "--temperature", "2", "--alpha", "0.666667",
                 *student, "model.arch=conformer", "train.max_frames=40"]) == 0
    assert "validation frame accuracy" in capsys.readouterr().out
    header, first = (out / "log.csv").read_text().splitlines()[:2]
    soft_ce = float(first.split(",")[header.split(",").index("train_soft_ce")])
    assert soft_ce > 0.0  # the soft term was computed against the store's rows
    assert "arch: conformer" in (out / "config.yaml").read_text()


def test_train_refuses_mismatched_temperature_and_settings(tmp_path, tiny_exp_dir, teacher_file, capsys):
    store = tmp_path / "store"
    assert _run(["distill", "dump-teacher", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir),
                 "--subset", "train", "--out", str(store), "--temperature", "2", "--top-k", "dense"]) == 0
    student = _train_overrides(tiny_exp_dir, tmp_path / "student")
    assert _run(["distill", "train", "--store", str(store), "--temperature", "5", *student]) == 2
    assert "T=5.0 but the teacher store holds soft targets at T=2;" in capsys.readouterr().err
    assert _run(["distill", "train", "--store", str(store), "--temperature", "2", *student]) == 0
    assert _run(["distill", "train", "--store", str(store), "--temperature", "2", "--alpha", "0.5", "--resume",
                 *student]) == 2
    assert "holds a run with other distillation settings" in capsys.readouterr().err


def test_lowrank_store_dump_inspect_fidelity_and_train(tmp_path, tiny_exp_dir, teacher_file, capsys):
    base = ["distill", "dump-teacher", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir), "--subset", "train"]
    out = tmp_path / "lr_k{k}_r{r}"
    assert _run([*base, "--out", str(out), "--store-kind", "lowrank", "--temperature", "1", "2", "5", "10",
                 "--top-k", "4", "--rank", "3", "6", "--fit-frames", "12"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("lowrank at T = 1, 2, 5, 10") == 2 and (tmp_path / "lr_k4_r3" / "basis.npz").exists()
    assert _run(["distill", "inspect", "--store", str(tmp_path / "lr_k4_r6")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["store_kind"], info["rank"], info["temperatures"]) == ("lowrank", 6, [1.0, 2.0, 5.0, 10.0])
    assert info["mean_kept_mass"] is None and set(info["mean_top_k_mass"]) == {"1", "2", "5", "10"}
    assert _run([*base, "--out", str(tmp_path / "T{T}_k{k}"), "--temperature", "2", "--top-k", "4"]) == 0
    capsys.readouterr()
    report = tmp_path / "fidelity.json"
    assert _run(["distill", "fidelity", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir), "--subset",
                 "train", "--store", str(tmp_path / "lr_k4_r6"), str(tmp_path / "T2_k4"), "--topk-policy",
                 "renormalise", "tail", "--out", str(report)]) == 0
    table = capsys.readouterr().out
    assert "| lowrank |" in table and "∞" in table and "distill fidelity: 3 store rows x 4 T" in table
    result = json.loads(report.read_text())
    rows = {r["name"]: r for r in result["stores"]}
    low = rows[str(tmp_path / "lr_k4_r6")]
    assert set(low) >= {"T1", "T2", "T5", "T10"} and low["array_bytes_per_frame"] == 4 * 4 + (2 + 4 // 2) + 8
    assert low["T2"]["kl_dense_store"] < rows[f"{tmp_path / 'T2_k4'} (tail)"]["T2"]["kl_dense_store"]
    assert "T5" not in rows[f"{tmp_path / 'T2_k4'} (renormalise)"] and result["retemper_floor"]["T2"] < 1e-6

    student = _train_overrides(tiny_exp_dir, tmp_path / "student")
    assert _run(["distill", "train", "--store", str(tmp_path / "lr_k4_r6"), "--temperature", "5", *student]) == 0
    assert (tmp_path / "student" / "model.pt").exists()
    other = _train_overrides(tiny_exp_dir, tmp_path / "other")
    assert _run(["distill", "train", "--store", str(tmp_path / "lr_k4_r6"), "--temperature", "3", *other]) == 2
    assert "holds soft targets at T=1, 2, 5, 10" in capsys.readouterr().err


def test_dump_teacher_refuses_bad_lowrank_options(tmp_path, tiny_exp_dir, teacher_file, capsys):
    base = ["distill", "dump-teacher", "--teacher", str(teacher_file), "--exp", str(tiny_exp_dir), "--subset", "train",
            "--store-kind", "lowrank", "--temperature", "1", "2"]
    assert _run([*base, "--out", str(tmp_path / "x"), "--top-k", "dense"]) == 2
    assert "--top-k dense does not apply" in capsys.readouterr().err
    assert _run([*base, "--out", str(tmp_path / "T{T}")]) == 2
    assert "only the {k} and {r} placeholders" in capsys.readouterr().err
    assert _run([*base, "--out", str(tmp_path / "same"), "--rank", "2", "3"]) == 2
    assert "several stores would share a directory" in capsys.readouterr().err
