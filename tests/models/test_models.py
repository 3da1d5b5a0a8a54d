from __future__ import annotations

import math

import pytest
import torch

from asr_kd.models import (
    DNN,
    PRESETS,
    ConformerAM,
    Ensemble,
    build,
    combine_logits,
    ensemble_of,
    load,
    log_posteriors,
    save,
    save_ensemble,
)
from asr_kd.models.windows import edge_padded
from asr_kd.utils.errors import AsrKdError


def windows_of(feats: torch.Tensor, length: int, left: int, right: int) -> torch.Tensor:
    """Reference: per-frame windows with clamped indices, as FrameTable.context_windows builds them."""
    idx = torch.arange(length)[:, None] + torch.arange(-left, right + 1)[None, :]
    return feats[idx.clamp(0, length - 1)]


def test_edge_padding_repeats_real_edge_frames():
    feats = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    out = edge_padded(feats, torch.tensor([4, 2]), left=2, right=1)
    assert out[0, :, 0].tolist() == [0, 0, 0, 1, 2, 3, 3]
    assert out[1, :, 0].tolist() == [4, 4, 4, 5, 5, 5, 5]  # the padding row 6, 7 never leaks in


def test_dnn_utterance_and_window_modes_agree():
    torch.manual_seed(0)
    model = build("dnn", "tiny", input_dim=6, num_senones=7).eval()
    feats, lengths = torch.randn(3, 11, 6), torch.tensor([11, 5, 1])
    out = model(feats, lengths)
    assert out.shape == (3, 11, 7)
    for b, n in enumerate(lengths.tolist()):
        ref = model(windows_of(feats[b], n, *model.context))
        torch.testing.assert_close(out[b, :n], ref, rtol=1e-5, atol=1e-5)


def test_conformer_one_output_per_frame_and_padding_invariant():
    torch.manual_seed(0)
    model = build("conformer", "tiny", input_dim=6, num_senones=7).eval()
    assert model.context is None
    feats = torch.randn(2, 9, 6)
    out = model(feats, torch.tensor([9, 4]))
    assert out.shape == (2, 9, 7)
    alone = model(feats[1:, :4], torch.tensor([4]))
    torch.testing.assert_close(out[1, :4], alone[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", sorted(PRESETS))
def test_save_load_round_trip_weights_only(tmp_path, arch):
    torch.manual_seed(0)
    model = build(arch, "tiny", input_dim=6, num_senones=7, dropout=0.0).eval()
    path = tmp_path / "m.pt"
    save(path, model, {"feature": {"fbank": {"num_mel_bins": 6}, "cmvn_mode": "speaker"}})
    payload = torch.load(path, weights_only=True)  # plain containers only
    assert payload["metadata"]["arch"] == arch
    loaded, meta = load(path)
    assert isinstance(loaded, DNN if arch == "dnn" else ConformerAM)
    assert meta["num_senones"] == 7 and meta["feature"]["cmvn_mode"] == "speaker"
    assert meta["context"] == ([3, 2] if arch == "dnn" else None)
    feats, lengths = torch.randn(2, 8, 6), torch.tensor([8, 6])
    torch.testing.assert_close(loaded(feats, lengths), model(feats, lengths))


def test_load_rejects_foreign_files(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"hello": torch.zeros(1)}, bad)
    with pytest.raises(AsrKdError, match="not an asr_kd model"):
        load(bad)
    with pytest.raises(AsrKdError, match="does not exist"):
        load(tmp_path / "missing.pt")
    with pytest.raises(AsrKdError, match="unknown model preset"):
        build("dnn", "huge", input_dim=3, num_senones=2)


def test_metadata_must_be_json():
    model = build("dnn", "tiny", input_dim=2, num_senones=3)
    with pytest.raises(ValueError, match="JSON"):
        save("/nonexistent/m.pt", model, {"feature": torch.zeros(1)})


def test_combine_modes_match_hand_computation():
    a = torch.tensor([[2.0, 0.0, -1.0]])
    b = torch.tensor([[0.0, 1.0, 0.0]])
    t = 2.0
    pa, pb = torch.softmax(a / t, -1), torch.softmax(b / t, -1)
    torch.testing.assert_close(combine_logits([a, b], t, "mean_prob").exp(), (pa + pb) / 2)
    geo = torch.sqrt(pa * pb)
    torch.testing.assert_close(combine_logits([a, b], t, "geometric").exp(), geo / geo.sum())
    torch.testing.assert_close(combine_logits([a, b], t, "mean_logits").exp(), torch.softmax((a + b) / 2 / t, -1))
    with pytest.raises(ValueError):
        combine_logits([a], 1.0, "median")


def test_ensemble_of_one_equals_member_log_softmax():
    torch.manual_seed(0)
    member = build("dnn", "tiny", input_dim=4, num_senones=5).eval()
    feats, lengths = torch.randn(1, 6, 4), torch.tensor([6])
    ens = Ensemble([member], temperature=3.0)
    torch.testing.assert_close(ens(feats, lengths), log_posteriors(member, feats, lengths, 3.0))
    with pytest.raises(ValueError, match="Ensemble.temperature"):
        log_posteriors(ens, feats, lengths, 2.0)


def test_mixed_ensemble_file_round_trip(tmp_path):
    torch.manual_seed(0)
    feature = {"feature": {"fbank": {}, "cmvn_mode": "speaker"}}
    paths = []
    for i, arch in enumerate(["dnn", "conformer"]):
        paths.append(tmp_path / f"m{i}.pt")
        save(paths[-1], build(arch, "tiny", input_dim=4, num_senones=5), feature)
    save_ensemble(tmp_path / "ens" / "ensemble.json", paths, temperature=2.0, combine="geometric")
    ens, meta = load(tmp_path / "ens" / "ensemble.json")
    assert isinstance(ens, Ensemble) and ens.temperature == 2.0 and ens.combine == "geometric"
    assert meta["num_senones"] == 5 and len(meta["members"]) == 2
    out = ens(torch.randn(2, 7, 4), torch.tensor([7, 3]))
    assert out.shape == (2, 7, 5)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, 7))
    save(tmp_path / "other.pt", build("dnn", "tiny", input_dim=4, num_senones=6), feature)
    with pytest.raises(AsrKdError, match="senones"):
        ensemble_of([paths[0], tmp_path / "other.pt"])


def test_preset_parameter_counts_are_in_the_intended_range():
    def count(arch: str, name: str) -> int:
        return sum(p.numel() for p in build(arch, name, input_dim=40, num_senones=1000).parameters())

    assert count("dnn", "tiny") < 100_000
    assert 1_000_000 < count("dnn", "mini") < 1_600_000
    assert count("conformer", "mini") < 3_000_000
    assert math.isclose(count("dnn", "paper"), 51_119_080)
