"""SpecAugment-style augmentation of training inputs (asr_kd.training.augment)."""

from __future__ import annotations

import pytest
import torch

from asr_kd.models import load
from asr_kd.training.augment import AUGMENTED_KEY, augment_batch, augment_features
from asr_kd.training.config import AugmentConfig, load_config
from asr_kd.training.trainer import run
from asr_kd.utils.errors import AsrKdError


def test_masks_are_bands_and_runs_of_zeros_drawn_per_example():
    torch.manual_seed(0)
    feats = torch.randn(64, 16, 40) + 5.0  # no value is 0 before masking
    out = augment_features(feats, AugmentConfig(freq_masks=1, freq_width=8))
    masked = out == 0
    bins = masked.all(dim=1)  # (N, D): a frequency mask covers every frame of the window
    assert torch.equal(masked, bins[:, None, :].expand_as(masked))
    widths = bins.sum(-1)
    assert widths.max() <= 8 and widths.unique().numel() > 2  # widths differ between examples
    for row in bins[widths > 0]:  # one contiguous band per example
        idx = row.nonzero().flatten()
        assert idx.max() - idx.min() + 1 == len(idx)
    assert torch.equal(out[~masked], feats[~masked])

    out = augment_features(feats, AugmentConfig(time_masks=2, time_width=4))
    frames = (out == 0).all(dim=2)  # (N, L): whole frames blanked
    assert torch.equal(out == 0, frames[:, :, None].expand_as(out)) and frames.sum(-1).max() <= 8


def test_noise_has_the_configured_std_and_off_is_identity():
    torch.manual_seed(0)
    feats = torch.zeros(200, 16, 40)
    assert augment_features(feats, AugmentConfig(noise_std=0.3)).std().item() == pytest.approx(0.3, rel=0.02)
    assert not AugmentConfig().enabled and AugmentConfig(noise_std=0.1).enabled
    assert not AugmentConfig(freq_masks=2).enabled  # a mask needs a width
    wide = augment_features(torch.ones(4, 3, 5), AugmentConfig(freq_masks=1, freq_width=50, time_masks=1, time_width=9))
    assert wide.shape == (4, 3, 5) and torch.isfinite(wide).all()  # widths above the axis are capped


def test_utterance_batches_keep_their_lengths_and_other_keys():
    batch = {"inputs": (torch.randn(2, 30, 8), torch.tensor([30, 12])), "targets": torch.zeros(42), "mask": 1}
    out = augment_batch(batch, AugmentConfig(time_masks=1, time_width=5))
    assert out[AUGMENTED_KEY] and out["inputs"][1] is batch["inputs"][1] and out["targets"] is batch["targets"]
    assert out["inputs"][0].shape == (2, 30, 8) and AUGMENTED_KEY not in batch


def test_augmented_training_is_reproducible_and_recorded(tmp_path, make_config):
    def augmented(out):
        config = make_config(out, epochs=2)
        config.augment = AugmentConfig(freq_masks=1, freq_width=3, time_masks=1, time_width=2, noise_std=0.1)
        return config

    a, b = run(augmented(tmp_path / "a")), run(augmented(tmp_path / "b"))
    clean = run(make_config(tmp_path / "clean", epochs=2))
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert a["history"][0]["train_loss"] != clean["history"][0]["train_loss"]
    _, meta = load(tmp_path / "a" / "model.pt")
    assert meta["training"]["augment"]["freq_width"] == 3
    assert "augment" not in load(tmp_path / "clean" / "model.pt")[1]["training"]


def test_bad_augment_settings_are_user_errors(tmp_path, make_config):
    config = make_config(tmp_path / "bad", epochs=1)
    config.augment = AugmentConfig(noise_std=-1.0)
    with pytest.raises(AsrKdError, match="augment.noise_std must be >= 0"):
        run(config)
    with pytest.raises(AsrKdError, match="unknown keys \\['freq_mask'\\] in section 'augment'"):
        load_config(None, ["augment.freq_mask=2"])
