"""The specialists pipeline on the project's own data/ (real speech, 20 + 10 utterances): a pipeline
check (tree, alignment, generalist, clusters, specialists, evaluation), not a result."""

import json

import pytest

from asr_kd.cli import main as _run

TRAIN, DEV = "train-clean-5", "dev-clean-2"
TREE_ARGS = ["--num-senones", "150", "--mono-iters", "2", "--mono-gaussians", "150", "--tri-iters", "2",
             "--tri-gaussians", "250", "--min-leaf-frames", "50", "--jobs", "1"]
TRAIN_ARGS = ["model.arch=dnn", "model.preset=tiny", "optim.lr=0.003", "optim.schedule=constant", "train.epochs=2",
              "train.batch_size=128", "train.patience=0", "train.checkpoint_every=0", "train.device=cpu",
              "train.progress=false", "train.threads=1"]


@pytest.mark.slow
def test_specialists_on_the_tiny_data(tiny_exp, tmp_path, capsys):
    exp = tmp_path / "exp"
    exp.mkdir()
    for name in ("manifests", "lang", "feats"):
        (exp / name).symlink_to((tiny_exp / name).resolve())
    assert _run(["tree", "--exp", str(exp), "--subset", TRAIN, *TREE_ARGS]) == 0
    assert _run(["align", "--exp", str(exp), "--subset", DEV, "--jobs", "1"]) == 0
    assert _run(["valid-split", "--exp", str(exp), "--subset", TRAIN, "--fraction", "0.2"]) == 0
    data = [f"data.exp={exp}", f"data.train_subset={TRAIN}"]
    generalist = tmp_path / "generalist"
    assert _run(["train", f"out_dir={generalist}", *data, *TRAIN_ARGS]) == 0
    d = tmp_path / "specialists"
    assert _run(["specialists", "cluster", "--generalist", str(generalist / "model.pt"), "--exp", str(exp),
                 "--subset", TRAIN, "--utts", str(exp / "splits" / TRAIN / "train.txt"), "--dir", str(d),
                 "--num-clusters", "4", "--cluster-size", "12"]) == 0
    assert _run(["specialists", "train", "--dir", str(d), *data, *TRAIN_ARGS]) == 0
    capsys.readouterr()
    out = tmp_path / "eval.json"
    assert _run(["specialists", "evaluate", "--dir", str(d), "--exp", str(exp), "--subset", DEV,
                 "--out", str(out)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"specialists evaluate {DEV}: frame accuracy")
    result = json.loads(out.read_text())
    assert result["utterances"] >= 8 and result["frames"] == sum(r["frames"] for r in result["by_coverage"])
    assert 0 < result["overall"]["generalist_frame_acc"] < 1 and 0 < result["overall"]["combined_frame_acc"] < 1
    assert result["frames_with_active_specialists"] > 0
