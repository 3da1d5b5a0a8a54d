"""The validation split: held out of the training subset, shared by every run, never the dev set."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from training_synth import DEV, TRAIN, tiny_config, write_subset, write_validation_split

from asr_kd.cli import main
from asr_kd.data.manifest import Utterance, write_manifest
from asr_kd.models import load
from asr_kd.training.data import training_utterances, validation_utterances
from asr_kd.training.trainer import run
from asr_kd.training.validation import choose_validation, list_digest, write_split
from asr_kd.utils import array_store
from asr_kd.utils.errors import AsrKdError

SPEAKERS = {"a": 40, "b": 10, "c": 3, "d": 1}  # utterances per speaker


def speaker_map() -> dict[str, str]:
    return {f"{spk}-1-{i:04d}": spk for spk, n in SPEAKERS.items() for i in range(n)}


def write_fake_manifest(exp: Path, subset: str) -> None:
    write_manifest(exp / "manifests" / f"{subset}.tsv",
                   [Utterance(u, f"/audio/{u}.flac", 16000 * 5, 5.0, spk, "F", "1", "A WORD")
                    for u, spk in speaker_map().items()])


def test_stratified_split_takes_a_share_of_every_speaker_and_is_reproducible():
    speakers = speaker_map()
    valid = choose_validation(speakers, 0.1, seed=3)

    def per_speaker(ids):
        return {s: sum(speakers[u] == s for u in ids) for s in SPEAKERS}

    # round(0.1 * 54) = 5 in all, shared in proportion: 4.0, 1.0, 0.3, 0.1 -> 4, 1, 0, 0
    assert per_speaker(valid) == {"a": 4, "b": 1, "c": 0, "d": 0}
    # round(0.15 * 54) = 8: whole parts 6, 1, 0, 0 and one more for the largest remainder (b: 1.5)
    assert per_speaker(choose_validation(speakers, 0.15)) == {"a": 6, "b": 2, "c": 0, "d": 0}
    tiny = choose_validation({"x-1": "x", "x-2": "x", "y-1": "y"}, 0.9)
    assert len(tiny) == 1 and tiny[0].startswith("x-")  # never all of a speaker's utterances
    assert valid == sorted(valid)
    reordered = dict(reversed(list(speakers.items())))
    assert choose_validation(reordered, 0.1, seed=3) == valid  # the set decides, not the order
    assert choose_validation(speakers, 0.1, seed=4) != valid
    uniform = choose_validation(speakers, 0.1, seed=3, stratify="none")
    assert len(uniform) == 6  # ceil(0.1 * 54), as `asr-kd subset`
    for bad in (0.0, 1.0):
        with pytest.raises(AsrKdError, match="validation fraction must be in"):
            choose_validation(speakers, bad)


def test_held_out_speakers_are_whole_speakers_never_all_and_reproducible():
    speakers = speaker_map()
    for seed in range(6):
        valid = choose_validation(speakers, 0.2, seed=seed, stratify="held-out-speakers")
        held = {speakers[u] for u in valid}
        # whole speakers, added until round(0.2 * 54) = 11 utterances are held out: without the last one, fewer
        assert sorted(valid) == valid and sorted(u for u, s in speakers.items() if s in held) == valid
        assert len(valid) >= 11 and any(len(valid) - SPEAKERS[s] < 11 for s in held)
        assert choose_validation(dict(reversed(list(speakers.items()))), 0.2, seed=seed,
                                 stratify="held-out-speakers") == valid
    everything = choose_validation(speakers, 0.99, seed=0, stratify="held-out-speakers")
    assert 0 < len({speakers[u] for u in everything}) < len(SPEAKERS)  # never every speaker
    with pytest.raises(AsrKdError, match="of 1 speaker"):
        choose_validation({"x-1": "x", "x-2": "x"}, 0.5, stratify="held-out-speakers")


def test_a_nested_split_divides_only_the_listed_utterances(tmp_path):
    write_fake_manifest(tmp_path, "train-x")
    outer, _ = write_split(tmp_path, "train-x", 0.1, seed=0)
    inner, written = write_split(tmp_path, "train-x", 0.2, seed=1, stratify="held-out-speakers",
                                 out=tmp_path / "inner", utts=outer.train_path)
    assert written and sorted(inner.valid + inner.train) == outer.train
    assert not set(inner.valid) & set(inner.train) and not set(outer.valid) & set(inner.valid + inner.train)
    speakers = speaker_map()
    assert not {speakers[u] for u in inner.valid} & {speakers[u] for u in inner.train}
    bad = tmp_path / "bad.txt"
    bad.write_text("nobody-1-0000\n")
    with pytest.raises(AsrKdError, match="bad.txt: 1 of 1 listed utterance"):
        write_split(tmp_path, "train-x", 0.2, out=tmp_path / "inner2", utts=bad)


def test_write_split_writes_disjoint_lists_and_reuses_or_refuses(tmp_path):
    write_fake_manifest(tmp_path, "train-x")
    split, written = write_split(tmp_path, "train-x", 0.1, seed=0)
    assert written and split.directory == tmp_path / "splits" / "train-x"
    valid = split.valid_path.read_text().split()
    train = split.train_path.read_text().split()
    assert not set(valid) & set(train) and sorted(valid + train) == sorted(speaker_map())
    info = json.loads((split.directory / "split.json").read_text())
    assert info["valid_sha256"] == hashlib.sha256(split.valid_path.read_bytes()).hexdigest() == list_digest(valid)
    assert info["utterances"] == {"train": 49, "valid": 5} and info["per_speaker"]["a"] == {"train": 36, "valid": 4}
    again, written = write_split(tmp_path, "train-x", 0.1, seed=0)
    assert not written and again.valid == valid
    with pytest.raises(AsrKdError, match="other settings"):
        write_split(tmp_path, "train-x", 0.2, seed=0)


def test_valid_split_cli(tmp_path, capsys):
    write_fake_manifest(tmp_path, "train-x")
    argv = ["valid-split", "--exp", str(tmp_path), "--subset", "train-x", "--fraction", "0.1"]
    assert main(argv) == 0
    assert "5 validation utterances (0.007 h, 2 speakers), 49 training" in capsys.readouterr().out
    assert main(argv) == 0 and "existing split reused" in capsys.readouterr().out
    assert main(argv[:-1] + ["0.3"]) == 2
    assert "every system of an experiment must use one split" in capsys.readouterr().err


def test_training_and_validation_utterances_are_disjoint(tmp_path, make_config, synth_exp):
    run(make_config(tmp_path / "r", epochs=1))
    trained = set((tmp_path / "r" / "train_utts.txt").read_text().split())
    valid = set((synth_exp / "splits" / TRAIN / "valid.txt").read_text().split())
    assert len(valid) == 4 and not trained & valid
    assert trained | valid == set(array_store.ArrayStore(synth_exp / "feats" / TRAIN))


def test_model_metadata_records_the_split(tmp_path, make_config, synth_exp):
    summary = run(make_config(tmp_path / "m", epochs=1))
    valid_file = synth_exp / "splits" / TRAIN / "valid.txt"
    _, meta = load(tmp_path / "m" / "model.pt")
    recorded = meta["training"]["validation"]
    assert recorded == summary["validation"]
    assert recorded["subset"] == TRAIN and recorded["held_out_of_training"] is True
    assert recorded["path"] == str(valid_file) and recorded["utterances"] == 4 and recorded["frames"] > 0
    assert recorded["list_sha256"] == hashlib.sha256(valid_file.read_bytes()).hexdigest()


def test_trainer_never_opens_the_dev_subset(tmp_path, monkeypatch):
    """Dev features that cannot be read (garbage) and no dev alignment: training runs and never looks."""
    exp = tmp_path / "exp"
    write_subset(exp, TRAIN, 12, seed=1)
    write_validation_split(exp, TRAIN)
    poisoned = exp / "feats" / DEV
    poisoned.mkdir(parents=True)
    for name in ("index.json", "meta.json", "cmvn.npz", "utt2spk"):
        (poisoned / name).write_text("not what you think\n")
    opened: list[Path] = []
    real_init = array_store.ArrayStore.__init__

    def recording_init(self, root, *args, **kwargs):
        opened.append(Path(root))
        real_init(self, root, *args, **kwargs)

    monkeypatch.setattr(array_store.ArrayStore, "__init__", recording_init)
    summary = run(tiny_config(exp, tmp_path / "run", epochs=2))
    assert summary["epochs_run"] == 2 and summary["validation"]["subset"] == TRAIN
    assert opened and not [p for p in opened if DEV in p.parts]


def test_a_missing_split_or_an_overlapping_train_list_is_a_clear_error(tmp_path, synth_exp):
    exp = tmp_path / "exp"
    write_subset(exp, TRAIN, 8, seed=1)
    with pytest.raises(AsrKdError, match="no validation split; write one with `asr-kd valid-split"):
        run(tiny_config(exp, tmp_path / "a", epochs=1))
    config = tiny_config(synth_exp, tmp_path / "b", epochs=1)
    valid = validation_utterances(config.data)
    listed = tmp_path / "train_utts.txt"
    listed.write_text("\n".join(training_utterances(config.data)[:2] + valid[:1]) + "\n")
    config.data.train_utts = str(listed)
    with pytest.raises(AsrKdError, match="1 listed training utterances are validation utterances"):
        run(config)
    config.data.train_utts, config.data.valid_utts = None, str(tmp_path / "nowhere.txt")
    with pytest.raises(AsrKdError, match="nowhere.txt: validation utterance list .* does not exist"):
        run(config)


def test_validating_on_another_subset_is_explicit_and_recorded(tmp_path, synth_exp, caplog):
    """The protocol ablation: a dev list as validation set; all training utterances train."""
    dev_list = tmp_path / "dev_quarter.txt"
    dev_list.write_text("\n".join(sorted(array_store.ArrayStore(synth_exp / "feats" / DEV))[:2]) + "\n")
    config = tiny_config(synth_exp, tmp_path / "d", epochs=1)
    config.data.valid_subset, config.data.valid_utts = DEV, str(dev_list)
    with caplog.at_level(logging.WARNING, logger="asr_kd"):
        summary = run(config)
    assert "numbers reported on dev-clean-2 are selected on it" in caplog.text
    assert summary["validation"]["held_out_of_training"] is False and summary["validation"]["utterances"] == 2
    assert len((tmp_path / "d" / "train_utts.txt").read_text().split()) == 16  # nothing held out of train


def test_early_stopping_counts_epochs_without_a_min_delta_gain(tmp_path, make_config):
    # No epoch after the first can gain a whole unit of accuracy: stop after `patience` epochs.
    summary = run(make_config(tmp_path / "p", epochs=10, patience=2, min_delta=1.0))
    assert summary["epochs_run"] == 3 and summary["stop_reason"] == "patience"
    assert summary["max_epochs"] == 10 and summary["kept_epoch"] == summary["best_epoch"]
    assert run(make_config(tmp_path / "q", epochs=2))["stop_reason"] == "max_epochs"


def test_newbob_ends_training_when_halving_stops_gaining(tmp_path, make_config):
    config = make_config(tmp_path / "nb", epochs=10)
    config.optim.schedule, config.optim.plateau_threshold, config.optim.newbob_stop_threshold = "newbob", 1.0, 1.0
    summary = run(config)
    # epoch 1: first score; epoch 2 gains < 1.0: halving starts; epoch 3 (halved) gains < 1.0: stop
    assert summary["epochs_run"] == 3 and summary["stop_reason"] == "newbob"
    assert [h["lr"] for h in summary["history"]] == [0.01, 0.01, 0.005]
