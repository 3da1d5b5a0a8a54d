"""The one way to load a model or an ensemble for use with stored features, targets or a tree.

Every command that runs a model on stored features, scores it against an alignment or pairs it
with a senone tree (``evaluate``, ``posteriors``, ``distill dump-teacher | topk-mass | train
--online-teacher``, ``export``, ``report``) loads it with :func:`load_model` and checks the
pairing with the :class:`LoadedModel` it returns, through the same functions:

* **features** (:meth:`LoadedModel.open_features`, :func:`check_feature_settings`): the fbank
  settings recorded in the feature directory's ``meta.json`` equal those the model was trained
  on, its feature dimension is the model's input size, and the CMVN mode that normalises them
  is the model's (the aligner checks its GMMs with :func:`check_feature_settings` too);
* **targets and trees** (:meth:`LoadedModel.check_targets`, :meth:`LoadedModel.check_tree`,
  :func:`check_senone_count`): an alignment's senone store or a tree has the model's number of
  senones.

A mismatch is one :class:`~asr_kd.utils.errors.AsrKdError` line naming both sides, e.g.
``exp/ali/dev/senones: 130 senones (alignment), but exp/m.pt has 150: they come from different
trees``. The model file itself is verified by :func:`asr_kd.models.io.load` (checksum, finite
weights).

>>> loaded = load_model("exp/student/model.pt")                           # doctest: +SKIP
>>> features = loaded.open_features("exp/feats/dev-clean-2")            # doctest: +SKIP
>>> loaded.check_targets("exp/ali/dev-clean-2/senones")                  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asr_kd.experiment import TREE_FILE
from asr_kd.features.dataset import FeatureSet
from asr_kd.features.fbank import FbankConfig
from asr_kd.models.io import ensemble_of, load, load_ensemble
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.checksum import file_sha256
from asr_kd.utils.errors import AsrKdError

PathLike = str | os.PathLike


@dataclass
class LoadedModel:
    """A model or ensemble loaded by :func:`load_model`.

    Attributes:
        model: in eval mode on the requested device; ``forward(feats (B, T, D), lengths (B,))``
            gives logits ``(B, T, S)``, or log-probabilities for an :class:`~asr_kd.models.Ensemble`.
        metadata: the model file's metadata (an ensemble's: its first member's ``feature`` and
            ``num_senones``, plus ``members``, ``combine`` and ``temperature``).
        sources: the files it was loaded from.
        temperature: softmax temperature still to apply to the outputs (1 for an ensemble,
            which tempers its members itself).
    """

    model: nn.Module
    metadata: dict[str, Any]
    sources: tuple[Path, ...]
    temperature: float = 1.0

    @property
    def name(self) -> str:
        """The source file(s), for messages."""
        return " + ".join(str(p) for p in self.sources)

    @property
    def num_senones(self) -> int:
        return int(self.model.num_senones)

    @property
    def weight_files(self) -> tuple[Path, ...]:
        """The files holding the weights: the model file(s), or an ensemble JSON's members."""
        members = self.metadata.get("members")
        return tuple(Path(m["path"]) for m in members) if members else self.sources

    def digest(self) -> str:
        """SHA-256 of everything the outputs depend on: the bytes of :attr:`weight_files`, the
        temperature and an ensemble's combination rule. A cache key, e.g. of a posterior store's
        shards, so that a retrained model at the same path gets its outputs redone."""
        settings = {"temperature": self.temperature, "members_temperature": self.metadata.get("temperature"),
                    "combine": self.metadata.get("combine"), "weights": [file_sha256(p) for p in self.weight_files]}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    @property
    def cmvn_mode(self) -> str | None:
        """The CMVN mode the model was trained with (None if its file does not record one)."""
        return (self.metadata.get("feature") or {}).get("cmvn_mode")

    @property
    def fbank(self) -> dict | None:
        """The fbank settings the model was trained on (None if its file does not record them)."""
        return (self.metadata.get("feature") or {}).get("fbank")

    def check_features(self, feature_dir: PathLike, cmvn_mode: str | None = None) -> None:
        """Raise unless the features of ``feature_dir`` are the model's (fbank settings, dimension)
        and ``cmvn_mode`` (if given: how the caller normalises them) is the model's CMVN mode."""
        feature_dir = Path(feature_dir)
        store = ArrayStore(feature_dir)
        check_feature_settings(self.name, self.fbank, feature_dir, store.meta.get("fbank"))
        dim = int(store.trailing_shape[0]) if store.trailing_shape else None
        if dim != int(self.model.input_dim):
            raise AsrKdError(f"{feature_dir}: {dim}-dimensional features, but {self.name} takes "
                             f"{self.model.input_dim}-dimensional input")
        if cmvn_mode is not None:
            self.check_cmvn_mode(cmvn_mode, str(feature_dir))

    def check_cmvn_mode(self, cmvn_mode: str, used_by: str) -> None:
        """Raise if the model records a CMVN mode other than ``cmvn_mode``, the one ``used_by`` normalises with."""
        if self.cmvn_mode is not None and cmvn_mode != self.cmvn_mode:
            raise AsrKdError(f"{self.name}: trained with CMVN mode {self.cmvn_mode!r} but {used_by} uses "
                             f"{cmvn_mode!r}")

    def open_features(self, feature_dir: PathLike) -> FeatureSet:
        """``feature_dir`` checked (:meth:`check_features`) and opened with the model's CMVN mode."""
        if self.cmvn_mode is None:
            raise AsrKdError(f"{self.name}: the model file records no CMVN mode (metadata feature.cmvn_mode), "
                             "so its input features cannot be normalised as in training")
        self.check_features(feature_dir)
        return FeatureSet(feature_dir, self.cmvn_mode)

    def check_targets(self, targets: ArrayStore | PathLike) -> None:
        """Raise unless an alignment's senone store (e.g. ``<exp>/ali/<subset>/senones``) has the model's senones."""
        store = targets if isinstance(targets, ArrayStore) else ArrayStore(targets)
        check_targets_fit(self.num_senones, self.name, store)

    def check_tree(self, tree: PathLike) -> None:
        """Raise unless a senone tree (``tree.json`` or the directory holding it) has the model's senones."""
        from asr_kd.alignment import SenoneTree

        path = Path(tree)
        path = path / TREE_FILE if path.is_dir() else path
        if not path.exists():
            raise AsrKdError(f"{path}: senone tree does not exist")
        check_senone_count(self.name, self.num_senones, str(path), SenoneTree.load(path).num_senones, "tree")


def load_model(paths: PathLike | Sequence[PathLike], device: str | torch.device = "cpu", *,
               temperature: float | None = None, combine: str | None = None, ensemble: bool = False) -> LoadedModel:
    """Load a model file, an ensemble JSON, or several model files (combined as an ensemble).

    Args:
        paths: one path or a sequence of them.
        temperature, combine: an ensemble's settings (default: the JSON's, else 1 and
            ``mean_prob``); for a single model, ``temperature`` is left to the caller
            (:attr:`LoadedModel.temperature`).
        ensemble: always return an :class:`~asr_kd.models.Ensemble` (one model file = one member),
            e.g. for a teacher whose members are tempered one by one.
    """
    sources = (Path(paths),) if isinstance(paths, (str, os.PathLike)) else tuple(Path(p) for p in paths)
    if not sources:
        raise AsrKdError("no model file given")
    if len(sources) == 1 and sources[0].suffix == ".json":
        model, meta = load_ensemble(sources[0], device, temperature, combine)
        return LoadedModel(model, meta, sources)
    if len(sources) > 1 or ensemble:
        model, meta = ensemble_of(list(sources), device, temperature or 1.0, combine or "mean_prob")
        return LoadedModel(model, meta, sources)
    model, meta = load(sources[0], device)
    return LoadedModel(model, meta, sources, temperature or 1.0)


def check_feature_settings(owner: str, trained_on: dict | None, feature_dir: PathLike, computed: dict | None) -> None:
    """Raise unless features computed with ``computed`` (a feature store's ``fbank`` record) are
    what ``owner`` (a model or aligner file) was trained on; either record missing = unchecked."""
    if not trained_on or not computed:
        return
    theirs, ours = FbankConfig.from_dict(computed).to_dict(), FbankConfig.from_dict(trained_on).to_dict()
    differ = [k for k in ours if theirs[k] != ours[k]]
    if differ:
        raise AsrKdError(f"{feature_dir}: features computed with {', '.join(f'{k}={theirs[k]}' for k in differ)}, "
                         f"but {owner} was trained on {', '.join(f'{k}={ours[k]}' for k in differ)}; recompute the "
                         "features with the model's settings")


def check_senone_count(owner: str, num_senones: int, other: str, other_senones: int, what: str) -> None:
    """Raise unless ``other`` (an alignment, tree, score store ... described by ``what``) has ``owner``'s senones."""
    if int(other_senones) != int(num_senones):
        raise AsrKdError(f"{other}: {other_senones} senones ({what}), but {owner} has {num_senones}: they come from "
                         "different trees")


def check_targets_fit(num_senones: int, owner: str, targets: ArrayStore) -> None:
    """:func:`check_senone_count` against the ``num_senones`` an alignment store records in its metadata."""
    recorded = targets.meta.get("num_senones")
    if recorded is not None:
        check_senone_count(owner, num_senones, str(targets.root), recorded, "alignment")
