"""recipes/mini_librispeech/local/store_designs.py (the store design study) on the tiny synthetic data."""

import importlib.util
import json
import math
from pathlib import Path

import torch

from asr_kd.models import build, save

SCRIPT = Path(__file__).resolve().parents[2] / "recipes" / "mini_librispeech" / "local" / "store_designs.py"


def test_design_study_measures_every_candidate(tmp_path, teacher, make_exp, capsys):
    lengths = {f"s{i % 4}-a-{i:04d}": 30 for i in range(12)}  # 4 of them fit the bases, 8 are measured
    exp = make_exp(tmp_path / "exp", {"train": lengths})
    torch.manual_seed(1)
    other = build("dnn", "tiny", input_dim=8, num_senones=24).eval()
    for name, model in (("a.pt", teacher), ("b.pt", other)):
        save(tmp_path / name, model, {"feature": {"cmvn_mode": "speaker"}})
    spec = importlib.util.spec_from_file_location("store_designs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "designs.json"
    result = module.main(["--teacher", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--exp", str(exp),
                          "--subset", "train", "--budget", "40", "--ks", "2", "4", "--fit-frames", "30",
                          "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    rows = {r["name"]: r for r in result["rows"]}
    assert result["eval_utterances"] == 8 and len(rows) == 11
    assert all(set(r) >= {"T1", "T2", "T5", "T10"} for r in rows.values())
    assert all(r["bytes_per_frame"] <= 40 for r in rows.values() if r["bytes_per_frame"] and "per T" not in r["name"])
    renorm = next(r for name, r in rows.items() if "renormalised" in name)
    assert math.isinf(renorm["T2"]["kl_dense_store"])
    floor = rows["re-tempered exact T=1 mean (floor, no compression)"]
    assert floor["T1"]["kl_dense_store"] < 1e-9 < floor["T5"]["kl_dense_store"]  # a 2-member ensemble
    assert "| design | bytes/frame |" in capsys.readouterr().out
