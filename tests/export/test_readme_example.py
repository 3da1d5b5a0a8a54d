"""The Python example of README.md ("Using a trained model from Python") runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from asr_kd.export import write_bundle

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "README.md"


def example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", EXAMPLE.read_text(), flags=re.S)
    assert len(blocks) == 1, "README.md must hold exactly one python block: the model-use example"
    return blocks[0]


def test_python_api_example_runs_as_written(saved_model: Path, tree_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    # the example's relative paths: exported/dnn_mini (a bundle) and data/ (the repository's tiny data)
    write_bundle(saved_model, tmp_path / "exported" / "dnn_mini", tree_dir, onnx=False)
    (tmp_path / "data").symlink_to(REPO / "data")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example_code(), str(EXAMPLE), "exec"), namespace)
    log_post, bundle = namespace["log_post"], namespace["bundle"]
    assert log_post.shape[1] == bundle.metadata["num_senones"] and log_post.shape[0] > 100
    np.testing.assert_allclose(np.exp(log_post).sum(axis=1), 1.0, atol=1e-4)
    assert np.all(np.isfinite(namespace["loglikes"]))
    assert f"({log_post.shape[0]}, {log_post.shape[1]})" in capsys.readouterr().out
