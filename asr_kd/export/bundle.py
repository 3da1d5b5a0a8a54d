"""A self-contained model folder for other pipelines (``asr-kd export``).

Layout of ``DIR``::

    bundle.json             everything needed to reproduce the model's inputs and use its outputs:
                            fbank config, CMVN mean/std (from training), context window,
                            senone count, file names, I/O tensor names, export check results
    model.pt                the asr_kd model file (``asr_kd.models.load``)
    model.torchscript.pt    TorchScript (``torch.jit.load``), same forward signature
    model.onnx              ONNX, inputs feats (B, T, D) float32 + lengths (B,) int64,
                            output logits (B, T, S); batch and time axes dynamic
    tree.json               senone tree + HMM topology (<exp>/tree/)           } only with
    senone_counts.npy       int64 (S,) training frame counts                   } --tree-dir
    senone_log_priors.npy   float32 (S,) log priors for pseudo log-likelihoods }

Input recipe for another pipeline: 16 kHz mono samples scaled to 16-bit integer range ->
Kaldi fbank with ``bundle.json["feature"]["fbank"]`` (the equivalent ``compute-fbank-feats``
command line is in ``["feature"]["kaldi_equivalent"]``) -> CMVN -> model -> ``log_softmax`` over
senones. CMVN: ``(x - cmvn.mean) / cmvn.std`` with the global training statistics for a model
trained with global CMVN; for one trained per speaker (``cmvn.training_mode == "speaker"``), the
speaker's own statistics, or, for a single utterance, the utterance's own statistics smoothed by
the global ones as 200 frames (:meth:`Bundle.normalize`).

Trust: :func:`load_bundle` reads only data: JSON, NumPy arrays without pickles and ``model.pt``
through ``torch.load(weights_only=True)`` (tensors and plain containers, checksum verified).
It never loads the TorchScript file: ``torch.jit.load`` runs code from the file, so
:meth:`Bundle.torchscript` does that only when called, and only after checking the file
against the SHA-256 that ``bundle.json["sha256"]`` recorded at export. That catches a damaged or
swapped file, not a forged bundle (whoever can replace a file can rewrite ``bundle.json``):
use a bundle from an untrusted source through :func:`load_bundle` (its ``model.pt`` weights)
only, never its TorchScript file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from asr_kd.experiment import COUNTS_FILE, TREE_FILE, Experiment
from asr_kd.export.onnx import INPUT_NAMES, OPSET, OUTPUT_NAME, export_onnx, onnx_max_abs_diff, onnx_session
from asr_kd.export.torchscript import export_torchscript, load_torchscript
from asr_kd.features.cmvn import Cmvn, CmvnStats, utterance_cmvn
from asr_kd.features.extract import CMVN_FILE
from asr_kd.features.fbank import FbankConfig
from asr_kd.utils.atomic import replace_dir, write_json
from asr_kd.utils.checksum import file_sha256
from asr_kd.utils.errors import AsrKdError

BUNDLE_FORMAT = "asr_kd.bundle/1"
BUNDLE_FILE = "bundle.json"
MODEL_FILE = "model.pt"
TORCHSCRIPT_FILE = "model.torchscript.pt"
ONNX_FILE = "model.onnx"
PRIORS_FILE = "senone_log_priors.npy"
#: Largest |ONNX - PyTorch| logit difference accepted at export time.
ONNX_TOLERANCE = 1e-3
#: Largest |TorchScript - PyTorch| logit difference accepted (the same kernels: 0 in practice).
TORCHSCRIPT_TOLERANCE = 1e-4


@dataclass
class Bundle:
    """A loaded export folder: the PyTorch model plus what its inputs and outputs need.

    Attributes:
        dir: the folder.
        model: the ``nn.Module`` in eval mode (``forward(feats (B, T, D), lengths (B,)) -> (B, T, S)``).
        metadata: the parsed ``bundle.json``.
    """

    dir: Path
    model: nn.Module
    metadata: dict[str, Any]

    @property
    def fbank(self) -> FbankConfig:
        return fbank_config(self.metadata)

    @property
    def cmvn_mean_std(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(D,)`` float32 global mean and std of the training features, or None (no CMVN)."""
        cmvn = self.metadata["cmvn"]
        if cmvn["mode"] == "none":
            return None
        return np.asarray(cmvn["mean"], dtype=np.float32), np.asarray(cmvn["std"], dtype=np.float32)

    @property
    def cmvn(self) -> Cmvn:
        """The global statistics as a :class:`Cmvn` (one pseudo-speaker ``"global"``), e.g. for
        :class:`~asr_kd.export.kaldi.KaldiFeatureSet`; empty when the model uses no CMVN."""
        stats = self.cmvn_mean_std
        if stats is None:
            return Cmvn({})
        mean, std = (s.astype(np.float64) for s in stats)
        count = int(self.metadata["cmvn"]["frames"])
        return Cmvn({"global": CmvnStats(count, mean * count, (std**2 + mean**2) * count)})

    def normalize(self, feats: np.ndarray, cmvn: str = "auto", speaker: CmvnStats | None = None) -> np.ndarray:
        """``(T, D)`` raw log-mel of one utterance -> float32 model input.

        Args:
            cmvn: ``"global"``: the training data's global statistics; ``"utterance"``: the
                utterance's own, smoothed by the global ones (:func:`~asr_kd.features.cmvn.utterance_cmvn`);
                ``"auto"``: ``"utterance"`` for a model trained with per-speaker CMVN (its inputs
                were normalised per speaker: the global statistics cost it ~7 WER points on
                Mini LibriSpeech), else ``"global"``.
            speaker: statistics of the utterance's speaker accumulated by the caller (e.g.
                over all of the speaker's utterances): the exact training-time normalisation of a
                per-speaker model; overrides ``cmvn``.
        """
        if cmvn not in ("auto", "global", "utterance"):
            raise AsrKdError(f"unknown CMVN choice {cmvn!r}: auto, global or utterance")
        stats = self.cmvn_mean_std
        feats = np.asarray(feats, dtype=np.float32)
        if stats is None:
            return feats
        if speaker is not None:
            if speaker.sum.shape != stats[0].shape:
                raise AsrKdError(f"speaker CMVN statistics of dimension {speaker.sum.shape[0]} for a model with "
                                 f"{stats[0].shape[0]}-dimensional features")
            mean, std = speaker.mean_std()
            return ((feats - mean) / std).astype(np.float32)
        if cmvn == "auto":
            cmvn = "utterance" if self.metadata["cmvn"].get("training_mode") == "speaker" else "global"
        if cmvn == "utterance":
            return utterance_cmvn(feats, self.cmvn.global_stats)
        return (feats - stats[0]) / stats[1]

    def log_priors(self) -> np.ndarray | None:
        """``(S,)`` float32 log senone priors, or None if the bundle was exported without a tree dir."""
        name = self.metadata["files"].get("senone_log_priors")
        return None if name is None else np.load(self.dir / name)

    def torchscript(self) -> torch.jit.ScriptModule:
        """The TorchScript export, loaded with ``torch.jit.load`` (which runs code from the file:
        trusted bundles only) after checking it against the checksum recorded in ``bundle.json``.

        Raises:
            AsrKdError: the file does not match its recorded checksum, or the bundle records none.
        """
        name = self.metadata["files"]["torchscript"]
        recorded = (self.metadata.get("sha256") or {}).get(name)
        if recorded is None:
            raise AsrKdError(f"{self.dir / BUNDLE_FILE}: records no checksum of {name} (exported by an older "
                             "asr_kd): export the model again, or torch.jit.load the file yourself if you trust it")
        if file_sha256(self.dir / name) != recorded:
            raise AsrKdError(f"{self.dir / name}: does not match the checksum in {BUNDLE_FILE} (damaged or replaced "
                             "file); not loaded")
        return load_torchscript(self.dir / name)


def fbank_config(model_metadata: dict[str, Any]) -> FbankConfig:
    """The :class:`FbankConfig` recorded in a model's (or bundle's) ``feature`` metadata.

    Accepts ``{"fbank": {...}, "cmvn_mode": ...}`` (what the trainer writes) and the flat form
    ``{num_mel_bins: ..., ..., "cmvn_mode": ...}``.
    """
    feature = model_metadata.get("feature")
    if not isinstance(feature, dict):
        raise AsrKdError("model metadata has no 'feature' entry: cannot recompute its input features")
    return FbankConfig.from_dict(feature.get("fbank", feature))


def kaldi_fbank_options(fbank: FbankConfig) -> str:
    """The ``compute-fbank-feats`` command line computing the same features (other options at Kaldi defaults)."""
    return (f"compute-fbank-feats --num-mel-bins={fbank.num_mel_bins} --frame-length={fbank.frame_length_ms:g} "
            f"--frame-shift={fbank.frame_shift_ms:g} --low-freq={fbank.low_freq:g} --high-freq={fbank.high_freq:g} "
            f"--dither={fbank.dither:g} --energy-floor=0 --sample-frequency={fbank.sample_rate}")


def training_cmvn_file(model_path: str | os.PathLike) -> Path:
    """``<exp>/feats/<train_subset>/cmvn.npz`` named by the ``config.yaml`` next to a trained model."""
    config_path = Path(model_path).parent / "config.yaml"
    if not config_path.exists():
        raise AsrKdError(f"{config_path} does not exist: pass the training CMVN statistics with --cmvn "
                         "(<exp>/feats/<train subset>/cmvn.npz or that feature directory)")
    data = (yaml.safe_load(config_path.read_text()) or {}).get("data", {})
    if not data.get("exp") or not data.get("train_subset"):
        raise AsrKdError(f"{config_path} names no data.exp / data.train_subset: pass the training CMVN statistics "
                         "with --cmvn")
    path = Experiment(data["exp"]).feats_dir(data["train_subset"]) / CMVN_FILE
    if not path.exists():  # a relative exp path in config.yaml is relative to where training ran
        raise AsrKdError(f"{path} (the training CMVN statistics named by {config_path}) does not exist here: "
                         "pass them with --cmvn")
    return path


def global_cmvn(source: str | os.PathLike) -> CmvnStats:
    """Global statistics of a ``cmvn.npz`` file or of a feature directory holding one."""
    path = Path(source)
    return Cmvn.load(path / CMVN_FILE if path.is_dir() else path).global_stats


def write_bundle(model_path: str | os.PathLike, out_dir: str | os.PathLike, tree_dir: str | os.PathLike | None = None,
                 cmvn_source: str | os.PathLike | None = None, onnx: bool = True,
                 check_inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
                 check_source: str = "given features") -> dict[str, Any]:
    """Export a model file into a bundle folder (see the module docstring); returns ``bundle.json``'s content.

    Everything is checked before anything is written, and the folder is written under a
    temporary name and renamed into place at the end: a failed export leaves no partial
    bundle (and an existing bundle at ``out_dir`` untouched).

    Args:
        model_path: an asr_kd model file (:mod:`asr_kd.models.io`).
        out_dir: the folder to write; an existing one is replaced only if it is an export folder.
        tree_dir: ``<exp>/tree`` with ``tree.json`` and ``senone_counts.npy`` (copied; priors derived).
        cmvn_source: training ``cmvn.npz`` or feature dir; default: found through the
            ``config.yaml`` the trainer wrote next to the model.
        onnx: also write and check ``model.onnx``.
        check_inputs: ``(feats (B, T, D) normalised, lengths (B,))`` to compare TorchScript and
            ONNX with PyTorch on; default N(0, 1) noise (what normalised features look like).
        check_source: what ``check_inputs`` are, for ``bundle.json["checks"]``.

    Raises:
        AsrKdError: an ensemble, a tree of other senones, non-finite model outputs on the check
            inputs, or an export whose outputs differ from PyTorch's by more than the tolerance
            (NaN included).
    """
    from asr_kd.export.onnx import example_inputs
    from asr_kd.models import load_model

    model_path, out = Path(model_path), Path(out_dir)
    loaded = load_model(model_path)
    model, meta = loaded.model, loaded.metadata
    if meta.get("arch") == "ensemble":
        raise AsrKdError(f"{model_path}: export the ensemble's member models one by one")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / BUNDLE_FILE).exists())):
        raise AsrKdError(f"{out}: exists and is not an export folder (no {BUNDLE_FILE}): not replacing it")
    bundle = bundle_metadata(model_path, meta, cmvn_source)
    tree = _read_tree(Path(tree_dir), loaded) if tree_dir is not None else None
    feats, lengths = check_inputs if check_inputs is not None else example_inputs(model.input_dim, frames=200)
    valid = torch.arange(feats.shape[1])[None, :] < lengths[:, None]
    with torch.no_grad():
        reference = model(feats, lengths)
    source = check_source if check_inputs is not None else "N(0, 1) noise"
    if not torch.isfinite(reference[valid]).all():
        raise AsrKdError(f"{model_path}: the model's outputs on {source} contain NaN/Inf; nothing exported")

    def fill(tmp: Path) -> None:
        shutil.copyfile(model_path, tmp / MODEL_FILE)
        if tree is not None:
            bundle["files"].update(_write_tree(Path(tree_dir), tmp, *tree))
        with torch.no_grad():
            scripted = load_torchscript(export_torchscript(model, tmp / TORCHSCRIPT_FILE))
            ts_diff = float((scripted(feats, lengths) - reference)[valid].abs().max())
        _check_close(out / TORCHSCRIPT_FILE, "TorchScript", ts_diff, TORCHSCRIPT_TOLERANCE)
        checks = {"inputs": source, "utterances": int(len(lengths)), "frames": int(lengths.sum()),
                  "torchscript_max_abs_diff": ts_diff}
        if onnx:
            export_onnx(model, tmp / ONNX_FILE)
            checks["onnx_max_abs_diff"] = onnx_max_abs_diff(model, onnx_session(tmp / ONNX_FILE), feats, lengths)
            checks["onnx_opset"] = OPSET
            bundle["files"]["onnx"] = ONNX_FILE
            _check_close(out / ONNX_FILE, "ONNX", checks["onnx_max_abs_diff"], ONNX_TOLERANCE)
        bundle["checks"] = checks
        bundle["sha256"] = {name: file_sha256(tmp / name) for name in bundle["files"].values()}
        write_json(tmp / BUNDLE_FILE, bundle)

    replace_dir(out, fill)
    return bundle


def _check_close(path: Path, what: str, diff: float, tolerance: float) -> None:
    """Raise unless ``diff`` (max |export - PyTorch|) is within ``tolerance``; NaN never is."""
    if not diff <= tolerance:
        raise AsrKdError(f"{path}: {what} logits differ from PyTorch by {diff:.2e} (> {tolerance}); nothing exported")


def bundle_metadata(model_path: str | os.PathLike, meta: dict[str, Any],
                    cmvn_source: str | os.PathLike | None = None) -> dict[str, Any]:
    """``bundle.json`` content (without export checks) for a model file (or ensemble JSON) and its metadata."""
    fbank = fbank_config(meta)
    cmvn_mode = meta["feature"].get("cmvn_mode", "none")
    num_senones = int(meta["num_senones"])
    return {
        "format": BUNDLE_FORMAT, "source_model": str(Path(model_path).resolve()), "arch": meta["arch"],
        "num_senones": num_senones, "context": meta.get("context"),
        "feature": {"fbank": fbank.to_dict(), "cmvn_mode": cmvn_mode, "frame_shift_s": fbank.frame_shift_ms / 1000,
                    "kaldi_equivalent": kaldi_fbank_options(fbank)},
        # an ensemble's members were trained on the same features: the first one's config.yaml names them
        "cmvn": _cmvn_entry(Path(meta["members"][0]["path"]) if "members" in meta else Path(model_path), cmvn_mode,
                            cmvn_source),
        "io": {"inputs": {INPUT_NAMES[0]: ["batch", "time", fbank.num_mel_bins], INPUT_NAMES[1]: ["batch"]},
               "output": {OUTPUT_NAME: ["batch", "time", num_senones]},
               "output_is": "unnormalised senone logits; log_softmax over the last axis gives log-posteriors"},
        "files": {"model": MODEL_FILE, "torchscript": TORCHSCRIPT_FILE},
        "model_metadata": meta,
    }


def _cmvn_entry(model_path: Path, cmvn_mode: str, source: str | os.PathLike | None) -> dict[str, Any]:
    """``bundle.json["cmvn"]``: the global training statistics that single-file inference applies.

    A model trained with per-speaker CMVN still gets the global statistics: an unseen speaker
    has none of its own (normalise a whole speaker's features yourself for an exact match).
    """
    if cmvn_mode == "none":
        return {"mode": "none", "training_mode": "none"}
    path = Path(source) if source is not None else training_cmvn_file(model_path)
    stats = global_cmvn(path)
    mean, std = stats.mean_std()
    return {"mode": "global", "training_mode": cmvn_mode, "source": str(path), "frames": int(stats.count),
            "mean": [float(x) for x in mean], "std": [float(x) for x in std]}


def _read_tree(tree_dir: Path, loaded) -> tuple[Any, np.ndarray]:
    """The tree and float32 ``(S,)`` log priors of ``tree_dir``, checked against the model's senones."""
    from asr_kd.alignment import SenoneTree, load_senone_log_priors
    from asr_kd.models.loader import check_senone_count

    loaded.check_tree(tree_dir / TREE_FILE)
    log_priors = load_senone_log_priors(tree_dir).astype(np.float32)
    check_senone_count(loaded.name, loaded.num_senones, str(tree_dir / COUNTS_FILE), len(log_priors), "senone counts")
    return SenoneTree.load(tree_dir / TREE_FILE), log_priors


def _write_tree(tree_dir: Path, out: Path, tree, log_priors: np.ndarray) -> dict[str, str]:
    """Copy the tree and senone counts into ``out``, write the log priors; returns the ``files`` entries."""
    tree.save(out / TREE_FILE)
    shutil.copyfile(tree_dir / COUNTS_FILE, out / COUNTS_FILE)
    np.save(out / PRIORS_FILE, log_priors)
    return {"tree": TREE_FILE, "senone_counts": COUNTS_FILE, "senone_log_priors": PRIORS_FILE}


def load_bundle(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                cmvn_source: str | os.PathLike | None = None) -> Bundle:
    """Open a folder written by :func:`write_bundle` (``asr-kd export``), or a trained model file.

    Reads data only (see the module docstring on trust): never the TorchScript file.

    For a model file (``*.pt``, or an ensemble ``*.json``, whose output is already combined
    log-probabilities) the bundle lives in memory only: CMVN statistics come from
    ``cmvn_source`` or the training ``config.yaml`` next to the (first member) model; there
    are no priors.
    """
    import json

    from asr_kd.models import load_model

    path = Path(path)
    if path.is_file():
        loaded = load_model(path, map_location)
        return Bundle(path.parent, loaded.model, bundle_metadata(path, loaded.metadata, cmvn_source))
    meta_path = path / BUNDLE_FILE
    if not meta_path.exists():
        raise AsrKdError(f"{path}: not an exported model folder (no {BUNDLE_FILE}; run `asr-kd export`)")
    try:
        metadata = json.loads(meta_path.read_text())
    except ValueError as err:
        raise AsrKdError(f"{meta_path}: invalid JSON ({err})") from None
    if metadata.get("format") != BUNDLE_FORMAT:
        raise AsrKdError(f"{meta_path}: format {metadata.get('format')!r}, expected {BUNDLE_FORMAT}")
    return Bundle(path, load_model(path / metadata["files"]["model"], map_location).model, metadata)
