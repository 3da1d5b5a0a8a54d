"""The bad-input matrix: every command on damaged or mismatched input.

Each case damages a copy of the tiny experiment (or corpus), runs the command and asserts what
every user error must give: exit code 2, one line on stderr that starts with
``asr-kd COMMAND: error:`` and names the file, no traceback, no partial output.
"""

from __future__ import annotations

import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr_kd.cli import main

TRAIN, DEV = "train-clean-5", "dev-clean-2"


@pytest.fixture(scope="module")
def base_exp(tiny_exp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny experiment plus a monophone tree, a (random) dev alignment and an untrained DNN of
    that tree's senones with the metadata the trainer writes (read-only: cases copy it)."""
    import yaml

    from asr_kd.alignment import SenoneTree
    from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter

    exp = tmp_path_factory.mktemp("bad_input") / "exp"
    shutil.copytree(tiny_exp, exp)
    SenoneTree.monophone().save(exp / "tree" / "tree.json")
    num_senones = SenoneTree.load(exp / "tree" / "tree.json").num_senones
    np.save(exp / "tree" / "senone_counts.npy", np.arange(num_senones) + 1)
    feats = ArrayStore(exp / "feats" / DEV)
    rng = np.random.default_rng(0)
    for kind, top in (("senones", num_senones), ("phones", 41)):
        writer = ArrayStoreWriter(exp / "ali" / DEV / kind, "int32", (), {"kind": kind, "num_senones": num_senones})
        writer.write_shard(0, [(u, rng.integers(0, top, feats.num_rows(u)).astype(np.int32)) for u in feats])
    model_dir = exp / "model"
    model_dir.mkdir()
    fbank = ArrayStore(exp / "feats" / TRAIN).meta["fbank"]
    save_model(model_dir / "model.pt", num_senones, fbank)
    (model_dir / "config.yaml").write_text(yaml.safe_dump({"data": {"exp": str(exp), "train_subset": TRAIN}}))
    return exp


def save_model(path: Path, num_senones: int, fbank: dict, scale: float = 1.0) -> Path:
    from asr_kd.models import build, save

    torch.manual_seed(0)
    model = build("dnn", "tiny", input_dim=40, num_senones=num_senones)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    save(path, model, {"feature": {"fbank": fbank, "cmvn_mode": "speaker"}})
    return path


@pytest.fixture
def exp(base_exp: Path, tmp_path: Path) -> Path:
    """A writable copy of :func:`base_exp` for one case."""
    out = tmp_path / "exp"
    shutil.copytree(base_exp, out)
    return out


@pytest.fixture
def corpus(tiny_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny LibriSpeech root."""
    root = tmp_path / "LibriSpeech"
    shutil.copytree(tiny_root, root)
    return root


# ---- damage ------------------------------------------------------------------------------------

def damage_tensor_bytes(model_path: Path, num_bytes: int = 2000) -> None:
    """Overwrite bytes inside the largest tensor of a torch zip file (the archive stays readable)."""
    with zipfile.ZipFile(model_path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(model_path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 4
    num_bytes = min(num_bytes, info.file_size // 2)
    data[start : start + num_bytes] = np.random.default_rng(1).integers(0, 256, num_bytes, dtype=np.uint8).tobytes()
    model_path.write_bytes(bytes(data))


def first_flac(root: Path, subset: str = TRAIN) -> Path:
    return sorted((root / subset).glob("*/*/*.flac"))[0]


def corrupt_middle(flac: Path) -> None:
    """2000 random bytes inside the audio frames; the header stays intact."""
    data = bytearray(flac.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2000] = np.random.default_rng(2).bytes(2000)
    flac.write_bytes(bytes(data))


def metadata_end(data: bytes) -> int:
    """Offset of the first FLAC audio frame (after the last metadata block)."""
    pos = 4
    while True:
        last, length = data[pos] & 0x80, int.from_bytes(data[pos + 1 : pos + 4], "big")
        pos += 4 + length
        if last:
            return pos


def unknown_length(flac: Path, keep_audio: bool = True) -> None:
    """Set STREAMINFO's total-samples field to 0 ("unknown"), as streaming encoders write it."""
    data = bytearray(flac.read_bytes())
    data[8 + 13] &= 0xF0
    data[8 + 14 : 8 + 18] = bytes(4)
    flac.write_bytes(bytes(data if keep_audio else data[: metadata_end(data)]))


def too_short(flac: Path) -> None:
    """12.5 ms of audio: less than one 25 ms analysis window."""
    sf.write(flac, np.zeros(200, dtype=np.float32), 16000, format="FLAC")


# ---- the matrix --------------------------------------------------------------------------------

@dataclass
class Case:
    """``make(exp, corpus) -> argv``; the error line names ``names``; ``absent`` must not exist after."""

    make: Callable[[Path, Path], list[str]]
    names: Callable[[Path, Path], list[str]]
    absent: Callable[[Path, Path], list[Path]] = field(default=lambda exp, corpus: [])
    not_in_stderr: tuple[str, ...] = ()


def _evaluate(exp: Path, model: Path | None = None) -> list[str]:
    return ["evaluate", "--model", str(model or exp / "model" / "model.pt"), "--exp", str(exp), "--subset", DEV]


def _damaged_model(exp: Path, corpus: Path) -> list[str]:  # issue 14.1
    damage_tensor_bytes(exp / "model" / "model.pt")
    return _evaluate(exp)


def _nan_model_export(exp: Path, corpus: Path) -> list[str]:  # issue 14.1: finite weights, overflowing outputs
    from asr_kd.utils.array_store import ArrayStore

    save_model(exp / "model" / "model.pt", 123, ArrayStore(exp / "feats" / TRAIN).meta["fbank"], scale=1e30)
    return ["export", "--model", str(exp / "model" / "model.pt"), "--out", str(exp / "bundle"), "--no-onnx"]


def _senones_evaluate(exp: Path, corpus: Path) -> list[str]:  # issue 14.2
    from asr_kd.utils.array_store import ArrayStore

    save_model(exp / "model" / "other.pt", 130, ArrayStore(exp / "feats" / TRAIN).meta["fbank"])
    return _evaluate(exp, exp / "model" / "other.pt")


def _fbank_posteriors(exp: Path, corpus: Path) -> list[str]:  # issue 14.2
    from asr_kd.utils.array_store import ArrayStore

    fbank = dict(ArrayStore(exp / "feats" / TRAIN).meta["fbank"], frame_shift_ms=15.0)
    save_model(exp / "model" / "other.pt", 123, fbank)
    return ["posteriors", "--model", str(exp / "model" / "other.pt"), "--exp", str(exp), "--subset", DEV,
            "--out", str(exp / "post")]


def _nan_shard(exp: Path) -> str:
    from asr_kd.utils.array_store import ArrayStore

    store = ArrayStore(exp / "feats" / DEV)
    victim = sorted(store.keys())[3]
    loc = store._index[victim]  # noqa: SLF001 - the test damages the file behind the store's back
    path = exp / "feats" / DEV / f"shard-{loc.shard:05d}.npy"
    shard = np.load(path)
    shard[loc.offset + 5, 7] = np.nan
    np.save(path, shard)
    return victim


def _nan_shard_evaluate(exp: Path, corpus: Path) -> list[str]:  # issue 14.3
    _nan_shard(exp)
    return _evaluate(exp)


def _nan_shard_posteriors(exp: Path, corpus: Path) -> list[str]:  # issue 14.3
    _nan_shard(exp)
    return ["posteriors", "--model", str(exp / "model" / "model.pt"), "--exp", str(exp), "--subset", DEV,
            "--out", str(exp / "post"), "--utts-per-shard", "100"]


def _nan_names(exp: Path, corpus: Path) -> list[str]:
    from asr_kd.utils.array_store import ArrayStore

    store = ArrayStore(exp / "feats" / DEV)
    victim = sorted(store.keys())[3]
    return [victim, f"shard-{store._index[victim].shard:05d}.npy"]  # noqa: SLF001


def _prepare(corpus: Path, exp: Path, *extra: str) -> list[str]:
    return ["prepare", "--root", str(corpus), "--subsets", TRAIN, DEV, "--exp", str(exp / "new"), "--jobs", "1",
            *extra]


def _corrupt_flac(exp: Path, corpus: Path) -> list[str]:  # issue 14.5
    corrupt_middle(first_flac(corpus))
    return _prepare(corpus, exp)


def _empty_flac(exp: Path, corpus: Path) -> list[str]:  # issue 14.5: header "unknown" length, no audio frames
    unknown_length(first_flac(corpus), keep_audio=False)
    return _prepare(corpus, exp)


def _short_flac(exp: Path, corpus: Path) -> list[str]:  # issue 14.6
    too_short(first_flac(corpus))
    return _prepare(corpus, exp)


def _short_flac_features(exp: Path, corpus: Path) -> list[str]:  # issue 14.6: a manifest written before
    from asr_kd.data import read_manifest, write_manifest
    from asr_kd.experiment import Experiment

    utts = read_manifest(Experiment(exp).manifest(DEV))[:3]
    flac = exp / "short.flac"
    too_short(flac)
    utts[1] = type(utts[1])(**{**utts[1].__dict__, "audio_path": str(flac), "num_samples": 200, "duration_s": 0.0125})
    write_manifest(Experiment(exp).manifest("short"), utts)
    return ["features", "--exp", str(exp), "--subsets", "short", "--jobs", "1", "--utts-per-shard", "1"]


def _bad_dev_subset(exp: Path, corpus: Path) -> list[str]:  # issue 14.8: the second subset fails
    sorted((corpus / DEV).glob("*/*/*.trans.txt"))[0].unlink()
    return _prepare(corpus, exp)


def _export_bad_tree(exp: Path, corpus: Path) -> list[str]:  # issue 14.8
    np.save(exp / "tree" / "senone_counts.npy", np.ones(100, dtype=np.int64))
    return ["export", "--model", str(exp / "model" / "model.pt"), "--out", str(exp / "bundle"), "--tree-dir",
            str(exp / "tree"), "--no-onnx"]


def _kaldi_ark_priors(exp: Path, corpus: Path) -> list[str]:  # issue 14.2: priors of another tree
    np.save(exp / "tree" / "senone_counts.npy", np.ones(100, dtype=np.int64))
    return ["kaldi-ark", "--model", str(exp / "model" / "model.pt"), "--feats", str(exp / "feats" / DEV),
            "--ark", str(exp / "ll.ark"), "--loglikes", "--tree-dir", str(exp / "tree")]


def _pickled_object(exp: Path, corpus: Path) -> list[str]:  # issue 14.9
    import argparse

    torch.save({"format": "asr_kd.model/1", "metadata": argparse.Namespace(evil=True)}, exp / "model" / "model.pt")
    return _evaluate(exp)


def _features_progress(exp: Path, corpus: Path) -> list[str]:  # issue 14.9: the bar must not swallow the error
    from asr_kd.data import read_manifest, write_manifest
    from asr_kd.experiment import Experiment

    utts = read_manifest(Experiment(exp).manifest(DEV))[:3]
    flac = exp / "bad.flac"
    shutil.copy(utts[2].audio_path, flac)
    corrupt_middle(flac)
    utts[2] = type(utts[2])(**{**utts[2].__dict__, "audio_path": str(flac)})
    write_manifest(Experiment(exp).manifest("bad"), utts)
    return ["features", "--exp", str(exp), "--subsets", "bad", "--jobs", "1", "--utts-per-shard", "1"]


def _id_not_matching_folder(exp: Path, corpus: Path) -> list[str]:  # issue 14.11
    trans = sorted((corpus / TRAIN).glob("*/*/*.trans.txt"))[0]
    lines = trans.read_text().splitlines()
    old_id = lines[0].split()[0]
    speaker, chapter, utt = old_id.split("-")
    new_id = f"{speaker}-{int(chapter) + 1}-{utt}"
    lines[0] = lines[0].replace(old_id, new_id, 1)
    trans.write_text("\n".join(lines) + "\n")
    (trans.parent / f"{old_id}.flac").rename(trans.parent / f"{new_id}.flac")
    return _prepare(corpus, exp)


CASES = {
    "damaged model file (evaluate)": Case(_damaged_model, lambda e, c: ["model.pt", "damaged"]),
    "NaN outputs (export)": Case(_nan_model_export, lambda e, c: ["model.pt", "NaN"],
                                 lambda e, c: [e / "bundle"]),
    "senones of model vs alignment (evaluate)": Case(_senones_evaluate,
                                                     lambda e, c: [str(e / "ali" / DEV / "senones"), "130"]),
    "fbank of model vs features (posteriors)": Case(_fbank_posteriors,
                                                    lambda e, c: [str(e / "feats" / DEV), "frame_shift_ms"],
                                                    lambda e, c: [e / "post"]),
    "NaN in a feature shard (evaluate)": Case(_nan_shard_evaluate, _nan_names),
    "NaN in a feature shard (posteriors)": Case(_nan_shard_posteriors, _nan_names, lambda e, c: [e / "post"]),
    "corrupt FLAC (prepare)": Case(_corrupt_flac, lambda e, c: [first_flac(c).name, "corrupt"],
                                   lambda e, c: [e / "new"]),
    "empty FLAC of unknown length (prepare)": Case(_empty_flac, lambda e, c: [first_flac(c).name, "empty audio"],
                                                   lambda e, c: [e / "new"]),
    "audio shorter than a window (prepare)": Case(_short_flac, lambda e, c: [first_flac(c).name, "shorter than"],
                                                  lambda e, c: [e / "new"]),
    "audio shorter than a window (features)": Case(_short_flac_features, lambda e, c: ["short.flac", "shorter than"]),
    "bad second subset leaves no manifests (prepare)": Case(_bad_dev_subset, lambda e, c: [".trans.txt", "missing"],
                                                            lambda e, c: [e / "new"]),
    "tree check before any file (export)": Case(_export_bad_tree, lambda e, c: ["senone_counts.npy"],
                                                lambda e, c: [e / "bundle"]),
    "senone priors of another tree (kaldi-ark)": Case(_kaldi_ark_priors, lambda e, c: [str(e / "tree"), "100 senones"],
                                                      lambda e, c: [e / "ll.ark"]),
    "pickled Python object (evaluate)": Case(_pickled_object, lambda e, c: ["model.pt"],
                                             not_in_stderr=("weights_only", "Traceback")),
    "error after a progress bar (features)": Case(_features_progress, lambda e, c: ["bad.flac", "corrupt"]),
    "utterance id of another chapter (prepare)": Case(_id_not_matching_folder,
                                                      lambda e, c: [".trans.txt", "does not belong"],
                                                      lambda e, c: [e / "new"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(case: str, exp: Path, corpus: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    spec = CASES[case]
    argv = spec.make(exp, corpus)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, f"exit code {code}, stderr: {err[-2000:]}"
    lines = err.split("\n")  # only newlines: a progress bar's "\r" redraws do not start a line
    error_lines = [line for line in lines if ": error: " in line]
    assert len(error_lines) == 1, err
    assert error_lines[0].startswith(f"asr-kd {argv[0]}: error: "), repr(error_lines[0])
    for name in spec.names(exp, corpus):
        assert name in error_lines[0], (name, error_lines[0])
    for text in ("Traceback", *spec.not_in_stderr):
        assert text not in err
    for path in spec.absent(exp, corpus):
        assert not path.exists(), f"{path} left behind"
