"""``asr-kd specialists cluster | train | evaluate | dump`` end to end on a synthetic experiment."""

import json
import math

import numpy as np
import pytest
import torch

from asr_kd.cli import main as _run
from asr_kd.models import build, load, save
from asr_kd.utils.array_store import ArrayStore

NUM_SENONES, DIM = 24, 8
TRAIN = {f"s{i}-a-{j:04d}": 150 for i in range(1, 4) for j in range(2)}
DEV = {"s9-d-0001": 90, "s9-d-0002": 60}


@pytest.fixture
def specialists_exp(tmp_path, make_exp):
    exp = make_exp(tmp_path / "exp", {"train": TRAIN, "dev": DEV})
    (exp / "splits" / "train").mkdir(parents=True)
    (exp / "splits" / "train" / "valid.txt").write_text("s3-a-0001\n")
    torch.manual_seed(0)
    generalist = build("dnn", "tiny", input_dim=DIM, num_senones=NUM_SENONES)
    save(tmp_path / "generalist.pt", generalist, {"feature": {"cmvn_mode": "speaker"}})
    return exp, tmp_path / "generalist.pt"


def _train_overrides(exp):
    return [f"data.exp={exp}", "data.train_subset=train", "train.epochs=2", "train.batch_size=32",
            "train.device=cpu", "train.progress=false", "train.threads=1", "optim.lr=0.003"]


def test_cluster_train_evaluate_dump_and_distil_back(tmp_path, specialists_exp, capsys):
    exp, generalist = specialists_exp
    d = tmp_path / "spec"
    assert _run(["specialists", "cluster", "--generalist", str(generalist), "--exp", str(exp), "--subset", "train",
                 "--dir", str(d), "--num-clusters", "3", "--cluster-size", "4", "--seed", "1"]) == 0
    assert "3 clusters of 4 senones from 900 frames of 6 train utterances" in capsys.readouterr().out
    clusters = json.loads((d / "clusters.json").read_text())
    assert len(clusters["clusters"]) == 3 and all(len(c) == 4 for c in clusters["clusters"])
    assert clusters["generalist"] == str(generalist.resolve()) and clusters["frames"] == 900

    assert _run(["specialists", "train", "--dir", str(d), *_train_overrides(exp)]) == 0
    assert "specialists train: 3 trained, 0 already done" in capsys.readouterr().out
    assert _run(["specialists", "train", "--dir", str(d), *_train_overrides(exp)]) == 0
    assert "0 trained, 3 already done" in capsys.readouterr().out

    trained, _ = load(d / "m001" / "train" / "model.pt")
    specialist, meta = load(d / "m001" / "specialist.pt")
    task = meta["task"]
    assert task["cluster"] == clusters["clusters"][1] and specialist.num_senones == 5
    train_sample = task["samples"]["train"]
    assert train_sample["others_kept"] == train_sample["in_cluster"]  # 1:1
    ratio = train_sample["others"] / train_sample["others_kept"]
    assert task["dustbin_log_correction"] == pytest.approx(math.log(ratio))
    lift = (specialist.output.bias - trained.output.bias).detach()
    assert lift[:-1].abs().max() == 0 and float(lift[-1]) == pytest.approx(task["dustbin_log_correction"], abs=1e-6)

    out, post = tmp_path / "eval.json", tmp_path / "post"
    assert _run(["specialists", "evaluate", "--dir", str(d), "--exp", str(exp), "--subset", "dev", "--out", str(out),
                 "--posteriors-out", str(post), "--utts-per-shard", "1"]) == 0
    printed = capsys.readouterr().out
    assert "specialists evaluate dev: frame accuracy" in printed and "| >= 1 (conditional) |" in printed
    result = json.loads(out.read_text())
    assert "| all frames | 150 |" in (tmp_path / "eval.md").read_text()
    assert result["frames"] == 150 and result["utterances"] == 2 and result["method"] == "em"
    rows = result["by_coverage"]
    assert sum(r["frames"] for r in rows) == 150
    assert result["conditional"]["frames"] == sum(r["frames"] for r in rows if r["specialists_covering"] > 0)
    assert result["frames_with_active_specialists"] > 0 and result["max_grad"] < 1e-3
    own = result["specialists_own"]
    assert own["all"]["active"] == sum(r["active"] for r in own["per_specialist"]) == round(
        result["mean_active_specialists"] * 150)
    assert all(r["inside"] + r["outside"] == r["active"] for r in own["per_specialist"])
    assert "| all |" in (tmp_path / "eval_by_specialist.md").read_text()
    store = ArrayStore(post)
    assert sorted(store.keys()) == sorted(DEV) and store.meta["num_senones"] == NUM_SENONES
    q = np.exp(store["s9-d-0001"].astype(np.float64))
    assert q.shape == (90, NUM_SENONES) and np.allclose(q.sum(1), 1, atol=2e-2)
    combined_correct = sum(r["frames"] * r["combined_frame_acc"] for r in rows)
    targets = ArrayStore(exp / "ali" / "dev" / "senones")
    argmax_correct = sum(int((store[u].argmax(1) == targets[u]).sum()) for u in DEV)
    assert argmax_correct == pytest.approx(combined_correct, abs=2)  # fp16 store: ties may flip

    teacher = tmp_path / "teacher"
    assert _run(["specialists", "dump", "--dir", str(d), "--exp", str(exp), "--subset", "train", "--out",
                 str(teacher), "--temperature", "2", "--top-k", "dense"]) == 0
    assert "specialists dump train: 6 utterances, 900 frames" in capsys.readouterr().out
    student = tmp_path / "student"
    assert _run(["distill", "train", "--store", str(teacher), "--temperature", "2", "--alpha", "0.5",
                 f"out_dir={student}", "model.arch=dnn", "model.preset=tiny", f"model.num_senones={NUM_SENONES}",
                 *_train_overrides(exp)]) == 0
    assert (student / "model.pt").exists()


def test_bad_inputs_are_one_line_errors(tmp_path, specialists_exp, capsys):
    exp, generalist = specialists_exp
    d = tmp_path / "spec"
    base = ["specialists", "cluster", "--generalist", str(generalist), "--exp", str(exp), "--subset", "train",
            "--dir", str(d)]
    assert _run([*base, "--cluster-size", str(NUM_SENONES)]) == 2
    assert "--cluster-size must lie in 1..23" in capsys.readouterr().err
    assert _run(["specialists", "evaluate", "--dir", str(d), "--exp", str(exp), "--subset", "dev"]) == 2
    assert "senone clusters do not exist" in capsys.readouterr().err
    assert _run([*base, "--num-clusters", "2", "--cluster-size", "3"]) == 0
    assert _run(["specialists", "evaluate", "--dir", str(d), "--exp", str(exp), "--subset", "dev"]) == 2
    assert "specialists [0, 1] of 2 are not trained" in capsys.readouterr().err
    assert _run(["specialists", "train", "--dir", str(d), "--only", "5", *_train_overrides(exp)]) == 2
    assert "holds 2 clusters, no specialist 5" in capsys.readouterr().err
