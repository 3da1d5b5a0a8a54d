"""``asr-kd report``: tables from per-seed JSON files and figures of a (tiny) experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asr_kd.cli import main
from asr_kd.reports.collect import Metric

DEV = "dev-clean-2"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_metric_parsing_and_lookup() -> None:
    metric = Metric.parse("summary.wer:100=WER (%)")
    assert metric == Metric("summary.wer", "WER (%)", 100.0)
    assert metric.value({"summary": {"wer": 0.125}}) == 12.5
    assert metric.value({"summary": {}}) is None
    assert Metric.parse("frame_acc") == Metric("frame_acc", "frame_acc", 1.0)


def test_report_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for i, (acc, wer) in enumerate([(0.50, 0.20), (0.52, 0.22)]):
        (tmp_path / f"base_s{i}.json").write_text(json.dumps({"frame_acc": acc}))
        (tmp_path / f"base_s{i}.wer.json").write_text(json.dumps({"summary": {"wer": wer}}))
    (tmp_path / "student.json").write_text(json.dumps({"frame_acc": 0.55, "summary": {"wer": 0.19}}))
    out = tmp_path / "results"
    assert main(["report", "table", "--row", f"baseline={tmp_path}/base_s?.json",
                 "--row", f"baseline={tmp_path}/base_s*.wer.json", "--row", f"student={tmp_path}/student.json",
                 "--metric", "frame_acc:100=frame acc (%)", "--metric", "summary.wer:100=WER (%)",
                 "--out-dir", str(out), "--name", "e1"]) == 0
    assert "2 rows x 2 metrics" in capsys.readouterr().out
    lines = (out / "e1.md").read_text().splitlines()
    assert lines[0].startswith("`asr-kd report table '--row=baseline=")
    assert lines[-2:] == ["| baseline | 51.00 ± 1.41 | 21.00 ± 1.41 |", "| student | 55.00 | 19.00 |"]
    summary = json.loads((out / "e1.json").read_text())
    assert summary["rows"]["baseline"]["WER (%)"]["n"] == 2 and len(summary["sources"]["baseline"]) == 4
    for png in ("e1_frame_acc.png", "e1_summary_wer.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    assert main(["report", "table", "--row", f"x={tmp_path}/nothing*.json", "--metric", "a",
                 "--out-dir", str(out), "--name", "e2"]) == 2
    assert "no file matches" in capsys.readouterr().err


def test_report_tradeoff(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rows = {name: {"params (M)": {"mean": size}, "acc (%)": {"mean": acc, "std": 0.1}}
            for name, size, acc in [("hard big", 0.9, 39.0), ("hard small", 0.2, 37.0), ("soft big", 0.9, 40.8),
                                    ("soft small", 0.2, 39.5)]}
    rows["ensemble"] = {"acc (%)": {"mean": 40.8, "std": 0.0}}
    table = tmp_path / "e4.json"
    table.write_text(json.dumps({"caption": None, "rows": rows}))
    out = tmp_path / "size.png"
    assert main(["report", "tradeoff", "--table", str(table), "--x", "params (M)", "--y", "acc (%)",
                 "--series", "hard=hard big", "--series", "hard=hard small", "--series", "distilled=soft big",
                 "--series", "distilled=soft small",
                 "--reference", "ensemble", "--out", str(out)]) == 0
    assert "2 series, 4 points" in capsys.readouterr().out and out.read_bytes()[:8] == PNG_MAGIC
    # the ensemble has no size: as a point it is refused in one line naming the table and the metric
    assert main(["report", "tradeoff", "--table", str(table), "--x", "params (M)", "--y", "acc (%)",
                 "--series", "x=ensemble", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(table) in err and "has no metric 'params (M)'" in err and "Traceback" not in err
    assert main(["report", "tradeoff", "--table", str(tmp_path / "none.json"), "--x", "a", "--y", "b",
                 "--series", "x=y", "--out", str(out)]) == 2
    assert "not a `report table` JSON" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_exp(tiny_exp: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """tiny_exp's features + a monophone tree + a fake phone CTM; a model file and a 2-member ensemble."""
    from asr_kd.alignment import SenoneTree
    from asr_kd.features.fbank import FbankConfig
    from asr_kd.models import build, save, save_ensemble
    from asr_kd.utils.array_store import ArrayStore

    exp = tmp_path_factory.mktemp("report_exp")
    (exp / "feats").symlink_to(tiny_exp / "feats")
    tree = SenoneTree.monophone()
    tree.save(exp / "tree" / "tree.json")
    utt = min(ArrayStore(tiny_exp / "feats" / DEV).keys())
    (exp / "ali" / DEV).mkdir(parents=True)
    (exp / "ali" / DEV / "phones.ctm").write_text(f"{utt} 1 0.00 0.30 SIL\n{utt} 1 0.30 0.25 AH\n{utt} 1 0.55 0.40 T\n")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build("dnn", "tiny", input_dim=40, num_senones=tree.num_senones)
        paths.append(exp / f"m{seed}.pt")
        save(paths[-1], model, {"feature": {"fbank": FbankConfig().to_dict(), "cmvn_mode": "speaker"}})
    save_ensemble(exp / "ens.json", paths, temperature=1.0)
    return exp, paths[0], exp / "ens.json"


def test_report_figures(small_exp: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    exp, model, ensemble = small_exp
    assert main(["report", "utterance", "--exp", str(exp), "--subset", DEV, "--model", f"teacher={ensemble}",
                 "--model", f"student={model}", "--max-seconds", "2", "--out", str(tmp_path / "utt.png")]) == 0
    assert main(["report", "entropy", "--exp", str(exp), "--subset", DEV, "--model", f"teacher={ensemble}",
                 "--model", str(model), "--temperatures", "1", "4", "--max-utts", "2",
                 "--out", str(tmp_path / "entropy.png")]) == 0
    log = tmp_path / "log.csv"
    log.write_text("epoch,train_loss,dev_loss,train_frame_acc,dev_frame_acc\n1,3.0,3.1,0.2,0.2\n2,2.5,2.7,0.3,0.28\n")
    assert main(["report", "curves", "--log", str(log), "--out", str(tmp_path / "curves.png")]) == 0
    assert "report curves: 1 runs" in capsys.readouterr().out
    for png in ("utt.png", "entropy.png", "curves.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10000
