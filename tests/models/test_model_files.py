"""Model file integrity: a checksum verified on load, finite weights, one-line errors (issue 14.1, 14.9)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from asr_kd.features.fbank import FbankConfig
from asr_kd.models import build, load, save
from asr_kd.models.io import MODEL_FORMAT
from asr_kd.utils.errors import AsrKdError

FBANK = FbankConfig(num_mel_bins=4).to_dict()


def tiny_model(num_senones: int = 5, input_dim: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return build("dnn", "tiny", input_dim=input_dim, num_senones=num_senones)


def saved(path: Path, model: torch.nn.Module | None = None, fbank: dict | None = None,
          cmvn_mode: str = "speaker") -> Path:
    save(path, model or tiny_model(), {"feature": {"fbank": FBANK if fbank is None else fbank, "cmvn_mode": cmvn_mode}})
    return path


def rewrite(path: Path, edit) -> None:
    """Change a model file's payload the way a damaged copy would, keeping it loadable by torch."""
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)


def test_weights_changed_after_saving_are_refused(tmp_path: Path) -> None:
    path = saved(tmp_path / "m.pt")

    def flip_one_weight(payload: dict) -> None:
        name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.numel() > 10)
        payload["state_dict"][name].view(-1)[3] += 0.25

    rewrite(path, flip_one_weight)
    with pytest.raises(AsrKdError, match=r"m.pt: damaged model file: its weights or metadata do not match"):
        load(path)


def test_metadata_changed_after_saving_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path / "m.pt")
    rewrite(path, lambda payload: payload["metadata"]["feature"].update(cmvn_mode="global"))
    with pytest.raises(AsrKdError, match="damaged model file"):
        load(path)


def test_file_without_checksum_loads_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Model files written before the checksum existed: accepted unverified, with a warning."""
    path = saved(tmp_path / "legacy.pt")
    rewrite(path, lambda payload: payload.pop("sha256"))
    with caplog.at_level(logging.WARNING, logger="asr_kd"):
        model, meta = load(path)
        load(path)
    warnings = [r.getMessage() for r in caplog.records if "without an integrity check" in r.getMessage()]
    assert len(warnings) == 1 and "legacy.pt" in warnings[0]
    torch.testing.assert_close(model.state_dict(), tiny_model().state_dict())


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    model = tiny_model()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(AsrKdError, match="NaN/Inf in the weights"):
        load(saved(tmp_path / "nan.pt", model))


def test_foreign_pickles_give_one_line_without_weights_only_advice(tmp_path: Path) -> None:
    import argparse

    path = tmp_path / "m.pt"
    torch.save({"format": MODEL_FORMAT, "metadata": argparse.Namespace(x=1)}, path)
    with pytest.raises(AsrKdError) as err:
        load(path)
    message = str(err.value)
    assert "\n" not in message and "weights_only" not in message and message.startswith(f"{path}: not a loadable")


def test_truncated_file_is_one_line(tmp_path: Path) -> None:
    path = saved(tmp_path / "m.pt")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(AsrKdError, match=r"m.pt: not a readable model file") as err:
        load(path)
    assert "\n" not in str(err.value)
