"""Kaldi ark/scp I/O: model outputs for Kaldi decoders, Kaldi features as model input.

* :func:`write_matrices` / :func:`write_model_outputs`: per-utterance ``(T, num_senones)``
  float32 matrices in a binary ark plus an scp index. With senone priors they are the
  pseudo log-likelihoods ``latgen-faster-mapped`` expects (column = our senone id, which is
  the pdf id of a Kaldi transition model built from the same tree).
* :class:`KaldiFeatureSet`: a ``feats.scp`` (or ``.ark``) opened like a
  :class:`~asr_kd.features.dataset.FeatureSet`, so every model runner accepts it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import kaldiio
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from asr_kd.features.cmvn import Cmvn
from asr_kd.features.dataset import FeatureSet
from asr_kd.utils.atomic import atomic_open
from asr_kd.utils.errors import AsrKdError


def write_matrices(ark_path: str | os.PathLike, items: Iterable[tuple[str, np.ndarray]],
                   scp_path: str | os.PathLike | None = None) -> int:
    """Write ``(utt_id, (T, D) matrix)`` pairs as a binary Kaldi ark (+ scp); returns the count.

    Matrices are stored as float32 (Kaldi ``FM``). The ark appears atomically, then the scp,
    whose ``ark:offset`` entries point into the final ark path.
    """
    ark_path = Path(ark_path)
    offsets: list[tuple[str, int]] = []
    with atomic_open(ark_path, "wb") as f:
        for utt_id, matrix in items:
            if not utt_id or any(c.isspace() for c in utt_id):
                raise AsrKdError(f"{ark_path}: utterance id {utt_id!r} is empty or has whitespace")
            matrix = np.asarray(matrix, dtype=np.float32)
            if matrix.ndim != 2:
                raise AsrKdError(f"{ark_path}: {utt_id}: expected a (T, D) matrix, got shape {matrix.shape}")
            f.write(f"{utt_id} ".encode())
            offsets.append((utt_id, f.tell()))
            kaldiio.save_mat(f, matrix)
    if scp_path is not None:
        with atomic_open(scp_path) as f:
            for utt_id, offset in offsets:
                f.write(f"{utt_id} {ark_path.resolve()}:{offset}\n")
    return len(offsets)


def read_matrices(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a Kaldi ``.scp`` (lazily) or ``.ark`` into ``{utt_id: (T, D) array}``."""
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: Kaldi file does not exist")
    try:
        if path.suffix == ".scp":
            return kaldiio.load_scp(str(path))
        return dict(kaldiio.load_ark(str(path)))
    except Exception as err:  # kaldiio raises ValueError, OSError, struct errors...
        raise AsrKdError(f"{path}: not a readable Kaldi ark/scp ({err})") from None


@torch.no_grad()
def write_model_outputs(model: nn.Module, features: FeatureSet, ark_path: str | os.PathLike,
                        scp_path: str | os.PathLike | None = None, log_priors: np.ndarray | None = None,
                        prior_scale: float = 1.0, device: str | torch.device = "cpu",
                        progress: bool = True) -> int:
    """Run ``model`` over every utterance of ``features`` and write Kaldi matrices; returns the count.

    Writes ``(T, num_senones)`` log-posteriors, or with ``log_priors`` ``(num_senones,)`` the
    scaled log-likelihoods ``log p(s|x) - prior_scale * log p(s)`` for ``latgen-faster-mapped``.
    """
    from asr_kd.decoding.decoder import scaled_log_likelihoods
    from asr_kd.models import utterance_log_posteriors

    outputs = utterance_log_posteriors(model.to(device), features, device=device)
    bar = tqdm(outputs, total=len(features.utt_ids()), desc="posteriors", unit="utt", disable=not progress)
    items = ((utt_id, scaled_log_likelihoods(post.numpy(), log_priors, prior_scale)) for utt_id, post in bar)
    return write_matrices(ark_path, items, scp_path)


class _KaldiStore:
    """The read-only part of the :class:`ArrayStore` interface over a Kaldi scp/ark."""

    def __init__(self, path: Path) -> None:
        self.root = path
        self._matrices = read_matrices(path)
        if not len(self._matrices):
            raise AsrKdError(f"{path}: no utterances")
        self._rows: dict[str, int] = {}
        first = self[next(iter(self._matrices))]
        self.trailing_shape = first.shape[1:]

    def keys(self) -> Iterator[str]:
        return iter(self._matrices)

    def __iter__(self) -> Iterator[str]:
        return iter(self._matrices)

    def __len__(self) -> int:
        return len(self._matrices)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._matrices

    def __getitem__(self, utt_id: str) -> np.ndarray:
        try:
            matrix = np.asarray(self._matrices[utt_id], dtype=np.float32)
        except KeyError:
            raise AsrKdError(f"{self.root}: no utterance {utt_id!r}") from None
        if matrix.ndim != 2:
            raise AsrKdError(f"{self.root}: {utt_id}: expected a (T, D) feature matrix, got shape {matrix.shape}")
        self._rows[utt_id] = len(matrix)
        return matrix

    def num_rows(self, utt_id: str) -> int:
        if utt_id not in self._rows:
            self[utt_id]
        return self._rows[utt_id]


class KaldiFeatureSet(FeatureSet):
    """Features from a Kaldi ``feats.scp``/``.ark``, normalised like a :class:`FeatureSet`.

    Kaldi directories hold no CMVN statistics in our format, so pass the model's training
    statistics (e.g. ``load_bundle(dir).cmvn``) unless ``cmvn_mode`` is ``"none"``. With
    ``"speaker"`` mode, utterances whose speaker (``utt2spk``, Kaldi format) has no statistics
    fall back to the global ones.

    Args:
        path: ``feats.scp`` or an ark of ``(T, D)`` matrices (D must match the model's input).
        cmvn: statistics to normalise with.
        cmvn_mode: ``"speaker"``, ``"global"`` or ``"none"``.
        utt2spk: optional Kaldi ``utt2spk`` file (``utt speaker`` per line).
    """

    # FeatureSet.__init__ opens an ArrayStore directory; everything else it does works on the
    # store/utt2spk/cmvn attributes set here, so the base initialiser is deliberately not called.
    def __init__(self, path: str | os.PathLike, cmvn: Cmvn | None = None, cmvn_mode: str = "global",
                 utt2spk: str | os.PathLike | None = None) -> None:
        if cmvn is None and cmvn_mode != "none":
            raise AsrKdError(f"{path}: CMVN mode {cmvn_mode!r} needs statistics (the model's, from its bundle)")
        self.dir = Path(path)
        self.store = _KaldiStore(self.dir)
        self.utt2spk = _read_kaldi_utt2spk(utt2spk) if utt2spk is not None else {}
        self.cmvn = cmvn if cmvn is not None else Cmvn({})  # unused in mode "none"
        self.cmvn_mode = cmvn_mode


def _read_kaldi_utt2spk(path: str | os.PathLike) -> dict[str, str]:
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: utt2spk file does not exist")
    pairs = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [i + 1 for i, p in enumerate(pairs) if len(p) != 2]
    if bad:
        raise AsrKdError(f"{path}: line {bad[0]} is not 'utterance speaker'")
    return dict(pairs)
