"""Training configuration: dataclasses loaded from YAML plus ``section.key=value`` overrides.

A YAML file has up to five sections mirroring the dataclasses below plus ``out_dir``::

    out_dir: exp/models/dnn_mini_seed0
    data: {exp: exp, train_subset: train-clean-100}   # validation: <exp>/splits/train-clean-100/valid.txt
    model: {arch: dnn, preset: mini}
    optim: {optimizer: adam, lr: 0.001, schedule: plateau}
    train: {epochs: 30, batch_size: 256, seed: 0, patience: 2, min_delta: 0.0005}
    augment: {freq_masks: 2, freq_width: 8}           # off unless set

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from asr_kd.experiment import Experiment
from asr_kd.utils.errors import AsrKdError


@dataclass
class DataConfig:
    """Where features and frame targets come from, and which utterances train and validate.

    The trainer reads two sets of utterances, both normally of ``train_subset``: the training
    utterances and the validation utterances of ``valid_utts`` (the split written by
    ``asr-kd valid-split``, :mod:`asr_kd.training.validation`), which are never trained on. The
    LR schedule, early stopping and the choice of ``model.pt`` read only the validation set; the
    reported dev/test subsets are never opened by the trainer (``asr-kd evaluate`` scores them).

    Attributes:
        exp: experiment directory with ``feats/<subset>/`` and ``ali/<subset>/<targets>/``.
        train_subset: subset trained on (required: no corpus's subset name is assumed).
        targets: which alignment store under ``ali/<subset>/`` gives the targets (``senones``).
        cmvn_mode: feature normalisation, ``speaker``, ``global`` or ``none``.
        train_fraction: fraction of the training utterances (after the validation hold-out)
            used, e.g. E2's 3%.
        subset_seed: seed of the random utterance subset when ``train_fraction < 1``.
        train_utts: file of training utterance ids (one per line) to train on instead of a
            ``train_fraction`` of the subset, e.g. a list from another run's ``train_utts.txt``;
            it must not contain validation utterances.
        valid_utts: file of validation utterance ids; ``null`` = ``<exp>/splits/<train_subset>/valid.txt``.
        valid_subset: subset the ``valid_utts`` belong to; ``null`` = ``train_subset`` (held
            out of training). Any other subset (e.g. a quarter of dev, as the protocol ablation
            of ``recipes/mini_librispeech/local/e1_study.sh`` does) selects models on that
            subset, so numbers reported on it are optimistic; the trainer logs a warning.
        loader: how training frames reach the model. ``memory`` (default, fastest for small
            sets): every process holds all training frames in RAM (``FrameTable``: float32
            features + three int64 per frame, 184 bytes/frame at 40 dims, 63 GB for 960 h).
            ``stream``: each process reads its own contiguous part of the training utterances
            from the stores in chunks (``asr_kd.features.frame_stream``): compact dtypes on the
            training device (94 bytes/frame at 40 dims in fp16 + teacher arrays), context
            windows gathered there, memory set by ``stream_chunk_frames``, same exact resume.
            Validation data always uses ``memory`` (it is small).
        stream_chunk_frames: ``stream`` only: frames per chunk (shuffle buffer; a process holds
            about two). ``0`` keeps the process's whole part resident on its device, loaded once
            and shuffled globally every epoch (960 h at fp16 + a top-20 teacher: ~60 GB on one GPU).
        stream_dtype: ``stream`` only: feature dtype in chunks, ``float16`` or ``float32``.
    """

    exp: str = "exp"
    train_subset: str | None = None
    targets: str = "senones"
    cmvn_mode: str = "speaker"
    train_fraction: float = 1.0
    subset_seed: int = 0
    train_utts: str | None = None
    valid_utts: str | None = None
    valid_subset: str | None = None
    loader: str = "memory"
    stream_chunk_frames: int = 2_000_000
    stream_dtype: str = "float16"

    def check_train_subset(self) -> str:
        """``train_subset``, or an :class:`AsrKdError` when the config does not name one."""
        if not self.train_subset:
            raise AsrKdError("data.train_subset is not set: name the training subset in the config or as an "
                             "override, e.g. data.train_subset=train-clean-100")
        return self.train_subset

    @property
    def validation_subset(self) -> str:
        """The subset the validation utterances come from."""
        return self.valid_subset or self.train_subset

    @property
    def validation_list(self) -> Path:
        """The file of validation utterance ids (``valid_utts`` or the experiment's default split)."""
        from asr_kd.training.validation import VALID_FILE  # numpy + manifests: not at CLI start

        return Path(self.valid_utts) if self.valid_utts else self.experiment.split_dir(self.train_subset) / VALID_FILE

    @property
    def experiment(self) -> Experiment:
        return Experiment(self.exp)

    def feats_dir(self, subset: str) -> Path:
        return self.experiment.feats_dir(subset)

    def targets_dir(self, subset: str) -> Path:
        return self.experiment.targets_dir(subset, self.targets)


@dataclass
class ModelConfig:
    """Which network to train.

    Attributes:
        arch: ``dnn`` (frame-shuffled minibatches of context windows) or ``conformer``
            (batches of whole utterances).
        preset: size preset of :mod:`asr_kd.models.presets` (``tiny``, ``mini``, ``paper``).
        overrides: constructor kwargs replacing the preset's (e.g. ``{hidden_dim: 1024}``).
        num_senones: output size; ``null`` reads it from ``<exp>/tree/tree.json``.
    """

    arch: str = "dnn"
    preset: str = "mini"
    overrides: dict[str, Any] = field(default_factory=dict)
    num_senones: int | None = None


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        optimizer: ``adam`` or ``sgd`` (with Nesterov-free momentum).
        lr: peak learning rate.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty (AdamW-style decoupled for ``adam``).
        grad_clip: max gradient norm; 0 disables clipping.
        schedule: ``newbob`` (Kaldi nnet1: once an epoch's validation frame-accuracy gain falls
            below ``plateau_threshold``, multiply the LR by ``plateau_factor`` after every epoch;
            stop once an epoch gains less than ``newbob_stop_threshold``), ``plateau`` (multiply
            the LR by ``plateau_factor`` after every epoch gaining less than ``plateau_threshold``:
            ``torch.optim.lr_scheduler.ReduceLROnPlateau``), ``cosine`` (cosine decay to
            ``min_lr`` over all steps) or ``constant``; see :mod:`asr_kd.training.schedule`.
        warmup_steps: linear warm-up steps from 0 to ``lr`` (conformers need some).
        plateau_factor: LR multiplier of ``plateau`` and ``newbob``.
        plateau_threshold: validation frame-accuracy gain over the best (absolute, e.g. 0.002 =
            0.2 points) below which ``plateau`` lowers the LR and ``newbob`` starts halving.
        newbob_stop_threshold: ``newbob`` ends training after a halving epoch that gained less
            than this over the best (absolute validation frame accuracy).
        min_lr: LR floor of every schedule.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    schedule: str = "plateau"
    warmup_steps: int = 0
    plateau_factor: float = 0.5
    plateau_threshold: float = 0.002
    newbob_stop_threshold: float = 0.0005
    min_lr: float = 1e-6


@dataclass
class TrainConfig:
    """The training loop.

    Attributes:
        epochs: maximum passes over the training frames (training to convergence: a maximum
            that ``patience`` normally ends earlier).
        batch_size: frames per minibatch per process (frame-level models).
        max_frames: padded frames per utterance batch per process (conformer, evaluation).
        seed: seed of initialisation, data order and dropout (ensemble members differ here).
        patience: stop after this many consecutive epochs whose validation frame accuracy is not
            ``min_delta`` above the best so far (early stopping, or with the ``plateau``
            schedule Kaldi nnet1's newbob stop: the LR was lowered that many times in a row
            without a gain); 0 = never stop early.
        min_delta: validation frame-accuracy gain over the best (absolute) that counts as
            progress for ``patience``; 0 = any gain. ``best.pt`` is the best epoch regardless.
        checkpoint_every: also checkpoint every N optimiser steps (epoch ends always are); 0 = only epochs.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: mixed precision on CUDA: ``bf16``, ``fp16`` (with a gradient scaler) or ``none``;
            ignored on CPU.
        threads: torch CPU threads per process; 0 keeps torch's default.
        progress: show tqdm progress bars.
        keep: which model becomes ``model.pt``: ``best`` (best validation frame accuracy, i.e.
            early stopping's model selection) or ``last`` (the final epoch's, "no early stopping").
        valid_every: validate after every N-th epoch and after the last; N > 1 only where no
            decision reads the per-epoch validation (``keep: last``, ``patience: 0``, a schedule
            other than ``newbob``/``plateau``). On small training sets the validation pass costs
            as much as the epoch (E2 at 3%: 25k training frames, 95k validation frames).
    """

    epochs: int = 10
    batch_size: int = 256
    max_frames: int = 20000
    seed: int = 0
    patience: int = 3
    min_delta: float = 0.0
    checkpoint_every: int = 1000
    device: str = "auto"
    amp: str = "bf16"
    threads: int = 0
    progress: bool = True
    keep: str = "best"
    valid_every: int = 1


@dataclass
class AugmentConfig:
    """SpecAugment-style augmentation of the training inputs (:mod:`asr_kd.training.augment`).

    Off by default (every count 0, no noise). Applied to training batches only, after CMVN.

    Attributes:
        freq_masks: bands of mel bins masked per example (SpecAugment's m_F).
        freq_width: widest band, in mel bins (F): each band's width is uniform in [0, F].
        time_masks: runs of frames masked per example: per context window of a DNN, per
            utterance of a conformer (m_T).
        time_width: longest run, in frames (T).
        noise_std: standard deviation of Gaussian noise added to every value, in the units of
            the normalised features (their own std is 1 under ``speaker``/``global`` CMVN).
    """

    freq_masks: int = 0
    freq_width: int = 0
    time_masks: int = 0
    time_width: int = 0
    noise_std: float = 0.0

    @property
    def enabled(self) -> bool:
        return (self.freq_masks > 0 and self.freq_width > 0) or (self.time_masks > 0 and self.time_width > 0) \
            or self.noise_std > 0

    def check(self) -> None:
        """Raise :class:`AsrKdError` for a negative count, width or noise level."""
        for name in ("freq_masks", "freq_width", "time_masks", "time_width", "noise_std"):
            if getattr(self, name) < 0:
                raise AsrKdError(f"augment.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class ExperimentConfig:
    """One training run: ``out_dir`` receives checkpoints, logs and the final ``model.pt``."""

    out_dir: str = "exp/models/run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
        raw = dict(raw or {})
        sections = {f.name: f for f in fields(cls) if f.name != "out_dir"}
        unknown = set(raw) - set(sections) - {"out_dir"}
        if unknown:
            raise AsrKdError(f"{source}: unknown top-level keys {sorted(unknown)}; "
                             f"expected out_dir, {sorted(sections)}")
        kwargs: dict[str, Any] = {}
        if "out_dir" in raw:
            kwargs["out_dir"] = str(raw["out_dir"])
        for name, f in sections.items():
            section_cls = f.default_factory
            values = raw.get(name) or {}
            if not isinstance(values, dict):
                raise AsrKdError(f"{source}: section {name!r} must be a mapping, got {values!r}")
            allowed = {sf.name for sf in fields(section_cls)}
            bad = set(values) - allowed
            if bad:
                raise AsrKdError(f"{source}: unknown keys {sorted(bad)} in section {name!r}; "
                                 f"allowed: {sorted(allowed)}")
            kwargs[name] = section_cls(**values)
        return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> ``(["train", "epochs"], 3)``; the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise AsrKdError(f"bad override {text!r}: expected section.key=value, e.g. train.epochs=3")
    return key.split("."), yaml.safe_load(value)


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``section.key=value`` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise AsrKdError(f"{path}: config file does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise AsrKdError(f"{path}: invalid YAML ({err})") from None
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise AsrKdError(f"override {text!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return ExperimentConfig.from_dict(raw, str(path) if path is not None else "config")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--resume`` and ``section.key=value`` overrides (shared by the CLI and the trainer)."""
    parser.add_argument("--config", type=Path, help="YAML config (see asr_kd/training/config.py for every key)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="config overrides, e.g. train.epochs=3 optim.lr=0.002")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out_dir>/checkpoint.pt (a finished run just returns its summary)")
