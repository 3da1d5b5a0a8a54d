"""The teacher store: a teacher's soft targets at temperature T, computed once, read by frame.

A teacher (one model or an ensemble) is run once over a feature set and its soft targets at
the distillation temperature are kept per utterance, keyed by utterance id (never by batch
position, so any sampler or frame order can read them). Layout of a store directory::

    probs/   ArrayStore float16 (T, k): the k largest probabilities of each frame, most
             probable first, NOT renormalised (1 - row sum = tail mass; the loss's
             ``topk_policy`` decides how to use it), or (T, S) for a dense store
    ids/     ArrayStore int16 (T, k) senone ids of those probabilities (int32 when S > 32768);
             top-k stores only
    utts.txt the shard plan of the dump (shard size, utterance order), checked on rerun

Both ``meta.json`` hold the :class:`TeacherStoreConfig` (teacher files, T, k, combine mode,
number of senones, feature directory). Shards follow the order of the utterance list; the
``ids`` shard is written before the ``probs`` shard, so a complete ``probs`` shard marks a
complete shard and a rerun skips it (resumable, atomic per shard, see
:mod:`asr_kd.utils.array_store`).

Sizes (:func:`asr_kd.distillation.accounting.bytes_per_frame`): a dense fp16 frame costs
``2 S`` bytes, a top-k frame ``4 k`` (int16 id + fp16 probability), e.g. 2000 vs 40 bytes for
S = 1000, k = 10 (2%).
The probabilities are stored at T: distilling at another T needs another dump (top-k
probabilities cannot be re-tempered without the tail).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from asr_kd.distillation.soft_targets import COMBINE_MODES, TopKTargets, check_temperature
from asr_kd.features.dataset import FeatureSet
from asr_kd.models.ensemble import Ensemble, combine_logits
from asr_kd.models.inference import utterance_batches
from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter
from asr_kd.utils.atomic import atomic_open
from asr_kd.utils.errors import AsrKdError

PROBS_DIR, IDS_DIR = "probs", "ids"
PLAN_FILE = "utts.txt"  # utts_per_shard, then the utterance order that defines the shards
STORE_KIND = "teacher_soft_targets"
PROB_DTYPE = np.dtype("float16")


@dataclass(frozen=True)
class TeacherStoreConfig:
    """What a store holds; saved in its ``meta.json`` so a resumed dump cannot mix settings.

    Attributes:
        temperature: T of the soft targets.
        num_senones: S, size of the teacher's output.
        top_k: senones kept per frame, or ``None`` for dense ``(T, S)`` probabilities.
        combine: how ensemble members were combined (:data:`COMBINE_MODES`).
        teachers: the model / ensemble files the targets come from (provenance).
        features: the feature directory the teacher ran on (provenance).
    """

    temperature: float
    num_senones: int
    top_k: int | None = 10
    combine: str = "mean_prob"
    teachers: tuple[str, ...] = field(default_factory=tuple)
    features: str = ""

    def __post_init__(self) -> None:
        # user settings (CLI flags, meta.json): bad values are AsrKdErrors, not bugs
        try:
            check_temperature(self.temperature)
        except ValueError as err:
            raise AsrKdError(f"teacher store: {err}") from None
        if self.num_senones < 1:
            raise AsrKdError(f"teacher store: num_senones must be positive, got {self.num_senones}")
        if self.top_k is not None and not 1 <= self.top_k <= self.num_senones:
            raise AsrKdError(f"teacher store: top_k must be in 1..{self.num_senones} (or dense), got {self.top_k}")
        if self.combine not in COMBINE_MODES:
            raise AsrKdError(f"teacher store: unknown combine mode {self.combine!r}; choose from {COMBINE_MODES}")

    @property
    def dense(self) -> bool:
        return self.top_k is None

    @property
    def ids_dtype(self) -> np.dtype:
        return np.dtype("int16") if self.num_senones <= np.iinfo(np.int16).max + 1 else np.dtype("int32")

    def to_meta(self) -> dict[str, Any]:
        return {"kind": STORE_KIND, **asdict(self), "teachers": list(self.teachers)}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], source: str | os.PathLike) -> TeacherStoreConfig:
        if meta.get("kind") != STORE_KIND:
            raise AsrKdError(f"{source}: not a teacher store (meta kind {meta.get('kind')!r})")
        fields = {k: v for k, v in meta.items() if k != "kind"}
        return cls(**{**fields, "teachers": tuple(fields.get("teachers", ()))})


def encode_frames(log_probs: torch.Tensor, config: TeacherStoreConfig) -> tuple[np.ndarray | None, np.ndarray]:
    """Soft targets in store form.

    Args:
        log_probs: ``(..., S)`` teacher log-probabilities at ``config.temperature``, e.g. ``(T, S)``
            for one utterance or ``(B, T, S)`` for a padded batch.

    Returns:
        ``(ids (..., k) int16/int32, probs (..., k) float16)`` for a top-k store, or
        ``(None, probs (..., S) float16)`` for a dense one.
    """
    if log_probs.shape[-1] != config.num_senones:
        raise AsrKdError(f"teacher output of shape {tuple(log_probs.shape)}, expected (..., {config.num_senones})")
    # computed on the tensor's device (GPU if the teacher ran there); only the compact result moves
    if config.dense:
        return None, log_probs.float().exp().half().cpu().numpy()
    # top-k of the log-probabilities (same order) so that only k values per frame are exponentiated
    top, ids = torch.topk(log_probs.float(), config.top_k, dim=-1, sorted=True)
    return ids.cpu().numpy().astype(config.ids_dtype), top.exp().half().cpu().numpy()


class TeacherStoreWriter:
    """Writes the shards of a teacher store (each shard atomic, finished shards skipped)."""

    def __init__(self, root: str | os.PathLike, config: TeacherStoreConfig) -> None:
        self.root = Path(root)
        self.config = config
        meta = config.to_meta()
        width = config.num_senones if config.dense else config.top_k
        self._ids = None if config.dense else ArrayStoreWriter(self.root / IDS_DIR, config.ids_dtype, (width,), meta)
        self._probs = ArrayStoreWriter(self.root / PROBS_DIR, PROB_DTYPE, (width,), meta)

    def shard_done(self, shard_id: int) -> bool:
        return self._probs.shard_done(shard_id)

    def write_shard(self, shard_id: int, items: Iterable[tuple[str, np.ndarray | None, np.ndarray]]) -> int:
        """Write ``(utt_id, ids, probs)`` triples (from :func:`encode_frames`) as one shard; returns frames."""
        items = list(items)
        if self._ids is not None:
            self._ids.write_shard(shard_id, [(u, ids) for u, ids, _ in items])
        self._probs.write_shard(shard_id, [(u, probs) for u, _, probs in items])  # last: marks the shard complete
        return sum(len(probs) for _, _, probs in items)


@dataclass(frozen=True)
class DumpSummary:
    utterances: int
    frames_written: int
    shards_written: int
    shards_skipped: int
    wall_seconds: float
    store_bytes: int  # shard arrays on disk, whole store


def dump_teacher(teacher: nn.Module, features: FeatureSet, out_dir: str | os.PathLike, config: TeacherStoreConfig,
                 utt_ids: Sequence[str] | None = None, utts_per_shard: int = 100, device: str | torch.device = "cpu",
                 max_frames: int = 10000, progress: bool = True) -> DumpSummary:
    """Run ``teacher`` over ``features`` and store its soft targets as ``config`` says (one store).

    See :func:`dump_teacher_stores` for the arguments.
    """
    return dump_teacher_stores(teacher, features, {out_dir: config}, utt_ids, utts_per_shard, device, max_frames,
                               progress)[Path(out_dir)]


def dump_teacher_stores(teacher: nn.Module, features: FeatureSet,
                        stores: Mapping[str | os.PathLike, TeacherStoreConfig], utt_ids: Sequence[str] | None = None,
                        utts_per_shard: int = 100, device: str | torch.device = "cpu", max_frames: int = 10000,
                        progress: bool = True, rank: int = 0, world_size: int = 1) -> dict[Path, DumpSummary]:
    """One pass of ``teacher`` over ``features`` writes several stores (temperatures, k, dense).

    A temperature sweep costs one teacher pass instead of one per T: member logits are computed
    once per batch and tempered, combined and encoded for every store.

    Args:
        teacher: an acoustic model (``forward(feats (B, T, D), lengths (B,)) -> logits (B, T, S)``)
            or an :class:`~asr_kd.models.ensemble.Ensemble`, whose members are combined as each
            store's ``config.combine`` says (its own ``temperature``/``combine`` are not used).
        features: normalised features, with the CMVN mode the teacher was trained with.
        stores: store directory -> its :class:`TeacherStoreConfig`; rerunning skips the shards
            every store already has.
        utt_ids: utterances to dump (default: all of ``features``); keep the order fixed across
            reruns, it defines the shards.
        utts_per_shard: utterances per shard (one resumable unit).
        max_frames: padded frames per teacher batch (memory: about ``members x max_frames x S x 8`` bytes).
        rank, world_size: several processes (e.g. one per GPU under torchrun) fill the same
            stores: process ``rank`` writes shards ``rank, rank + world_size, ...`` of the plan.

    Returns:
        A :class:`DumpSummary` per store directory (shards and frames of this process).
    """
    ids = list(utt_ids) if utt_ids is not None else features.utt_ids()
    unknown = [u for u in ids if u not in features.store]
    if unknown or len(set(ids)) != len(ids):
        raise AsrKdError(f"{features.dir}: the utterance list has {len(unknown)} ids without features "
                         f"(e.g. {unknown[:3]}) or duplicates; it must name each utterance once")
    writers = {Path(d): TeacherStoreWriter(d, c) for d, c in stores.items()}
    for root in writers:
        _check_same_plan(root / PLAN_FILE, ids, utts_per_shard)
    shards = [ids[i : i + utts_per_shard] for i in range(0, len(ids), utts_per_shard)]
    mine = range(rank, len(shards), world_size)  # by shard id, not by what is left: no race between processes
    todo = {root: [i for i in mine if not w.shard_done(i)] for root, w in writers.items()}
    start = time.perf_counter()
    frames = dict.fromkeys(writers, 0)
    pending = sorted({i for shard_ids in todo.values() for i in shard_ids})
    for shard_id in tqdm(pending, desc=f"teacher -> {len(writers)} store(s)", unit="shard", disable=not progress):
        missing = {root: writers[root] for root in writers if shard_id in todo[root]}
        encoded = _encode_shard(teacher, features, shards[shard_id], {r: w.config for r, w in missing.items()},
                                device, max_frames)
        for root, writer in missing.items():
            frames[root] += writer.write_shard(shard_id, [(u, *encoded[root][u]) for u in shards[shard_id]])
    wall = time.perf_counter() - start
    summaries = {}
    for root in writers:
        store = TeacherStore(root)
        summaries[root] = DumpSummary(len(store), frames[root], len(todo[root]), len(mine) - len(todo[root]), wall,
                                      store.nbytes())
    return summaries


@torch.no_grad()
def tempered_batches(teacher: nn.Module, features: FeatureSet, utt_ids: Sequence[str],
                     settings: Sequence[tuple[float, str]], device: str | torch.device = "cpu",
                     max_frames: int = 10000) -> Iterator[tuple[list[str], list[int], list[torch.Tensor]]]:
    """Run the teacher once per batch and temper/combine its output for several settings.

    Args:
        teacher: a model or an :class:`~asr_kd.models.ensemble.Ensemble` (members run one by one).
        settings: ``(temperature, combine)`` pairs.
        max_frames: padded frames per batch.

    Yields:
        ``(utt_ids (B), lengths (B) frames, [log soft targets (B, T_max, S) per setting])`` on
        ``device``; positions past an utterance's length are padding.
    """
    members = list(teacher.members) if isinstance(teacher, Ensemble) else [teacher]
    members = [m.to(device).eval() for m in members]
    for batch in utterance_batches(features, utt_ids, max_frames=max_frames):
        feats, lengths = batch["feats"].to(device), batch["lengths"].to(device)
        member_logits = [m(feats, lengths).float() for m in members]  # M x (B, T, S)
        log_probs = []
        for temperature, combine in settings:
            if len(member_logits) == 1:  # every combine mode reduces to this; skips a costly no-op logsumexp
                log_probs.append(torch.log_softmax(member_logits[0] / temperature, dim=-1))
            else:
                log_probs.append(combine_logits(member_logits, temperature, combine))
        yield batch["utt_ids"], batch["lengths"].tolist(), log_probs


def _encode_shard(teacher: nn.Module, features: FeatureSet, utt_ids: list[str],
                  configs: Mapping[Path, TeacherStoreConfig], device: str | torch.device,
                  max_frames: int) -> dict[Path, dict[str, tuple[np.ndarray | None, np.ndarray]]]:
    """Store-ready soft targets of ``utt_ids`` for every config: ``{store: {utt_id: (ids, probs)}}``."""
    out: dict[Path, dict] = {root: {} for root in configs}
    settings = [(c.temperature, c.combine) for c in configs.values()]
    for batch_ids, lengths, log_probs in tempered_batches(teacher, features, utt_ids, settings, device, max_frames):
        for (root, config), batch_log_probs in zip(configs.items(), log_probs):
            try:
                ids, probs = encode_frames(batch_log_probs, config)
            except AsrKdError as err:
                raise AsrKdError(f"{err} (teacher {type(teacher).__name__}, store {root})") from None
            for b, (utt_id, n) in enumerate(zip(batch_ids, lengths)):
                out[root][utt_id] = (None if ids is None else ids[b, :n], probs[b, :n])
    return out


def _check_same_plan(path: Path, utt_ids: list[str], utts_per_shard: int) -> None:
    """Record the shard plan on the first run; a rerun must use the same one (else shards would mix)."""
    plan = f"utts_per_shard\t{utts_per_shard}\n" + "".join(f"{u}\n" for u in utt_ids)
    if not path.exists():
        with atomic_open(path) as f:
            f.write(plan)
    elif path.read_text() != plan:
        raise AsrKdError(f"{path}: this store was started with another utterance list or --utts-per-shard; "
                         "rerun with the same ones or use another output directory")


class TeacherStore:
    """Read-only view of a teacher store: per-utterance soft targets and size accounting."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not (self.root / PROBS_DIR).exists():
            raise AsrKdError(f"{self.root}: not a teacher store (no {PROBS_DIR}/); run `asr-kd distill dump-teacher`")
        self.probs = ArrayStore(self.root / PROBS_DIR)
        self.config = TeacherStoreConfig.from_meta(self.probs.meta, self.probs.root)
        self.ids = None if self.config.dense else ArrayStore(self.root / IDS_DIR)
        if self.ids is not None and not set(self.probs.keys()) <= set(self.ids.keys()):
            raise AsrKdError(f"{self.root}: {IDS_DIR}/ lacks utterances that {PROBS_DIR}/ has (store damaged)")

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self.probs

    def __len__(self) -> int:
        return len(self.probs)

    def keys(self) -> list[str]:
        return self.probs.keys()

    def num_rows(self, utt_id: str) -> int:
        return self.probs.num_rows(utt_id)

    def total_rows(self) -> int:
        return self.probs.total_rows()

    def utterance(self, utt_id: str) -> torch.Tensor | TopKTargets:
        """Soft targets of one utterance: dense ``(T, S)`` float32 or top-k ``(T, k)`` (int64, float32)."""
        probs = torch.from_numpy(np.asarray(self.probs[utt_id], dtype=np.float32))
        if self.ids is None:
            return probs
        return TopKTargets(torch.from_numpy(np.asarray(self.ids[utt_id], dtype=np.int64)), probs)

    def nbytes(self) -> int:
        """Bytes on disk of the shard arrays (ids + probs)."""
        return self.probs.nbytes() + (self.ids.nbytes() if self.ids is not None else 0)

    def measured_bytes_per_frame(self) -> float:
        """:meth:`nbytes` per stored frame (includes the ``.npy`` headers)."""
        return self.nbytes() / max(self.total_rows(), 1)

    def mean_kept_mass(self, chunk_rows: int = 65536) -> float:
        """Mean over frames of the stored probability mass (1 for dense; top-k: 1 - tail mass)."""
        total, rows = 0.0, 0
        for shard_path in sorted(self.probs.root.glob("shard-*.npy")):
            shard = np.load(shard_path, mmap_mode="r")
            for start in range(0, len(shard), chunk_rows):
                total += float(np.asarray(shard[start : start + chunk_rows], dtype=np.float64).sum())
            rows += len(shard)
        return total / max(rows, 1)


class FrameOrder(Protocol):
    """What a :class:`~asr_kd.features.dataset.FrameTable` tells about its row order."""

    utt_ids: Sequence[str]
    offsets: np.ndarray  # (U + 1,) first frame of each utterance, then the total


class TeacherTargets:
    """A store's soft targets for every frame of a frame table, in RAM, in the table's row order.

    Row ``i`` belongs to the same frame as row ``i`` of the :class:`FrameTable` (utterances in
    ``FrameTable.utt_ids`` order, concatenated), so a training batch's ``frame_index`` gathers
    its targets. Tables keep the store's compact dtypes: ``N * bytes_per_frame`` bytes of RAM
    (e.g. 970k frames: 39 MB at k = 10, 1.9 GB dense with 1000 senones).

    Attributes:
        config: the store's :class:`TeacherStoreConfig` (temperature, k, ...).
        ids: ``(N, k)`` int16/int32 senone ids, or ``None`` for a dense store.
        probs: ``(N, k)`` or ``(N, S)`` float16 probabilities.
    """

    def __init__(self, store: TeacherStore, frames: FrameOrder) -> None:
        self.config = store.config
        missing = [u for u in frames.utt_ids if u not in store]
        if missing:
            raise AsrKdError(
                f"{len(missing)} of {len(frames.utt_ids)} utterances have no teacher targets in {store.root}, "
                f"e.g. {missing[:3]} (dump the teacher for this feature set)"
            )
        num_frames = int(frames.offsets[-1])
        probs = np.empty((num_frames, *store.probs.trailing_shape), dtype=PROB_DTYPE)
        ids = None if store.ids is None else np.empty((num_frames, self.config.top_k), dtype=self.config.ids_dtype)
        for utt_id, start, end in zip(frames.utt_ids, frames.offsets[:-1], frames.offsets[1:]):
            if store.num_rows(utt_id) != end - start:
                raise AsrKdError(
                    f"{utt_id}: {end - start} frames in the feature table but {store.num_rows(utt_id)} in teacher "
                    f"store {store.root} (targets dumped from other features?)"
                )
            probs[start:end] = store.probs[utt_id]
            if ids is not None:
                ids[start:end] = store.ids[utt_id]
        self.probs = torch.from_numpy(probs)
        self.ids = None if ids is None else torch.from_numpy(ids)

    @classmethod
    def load(cls, root: str | os.PathLike, frames: FrameOrder) -> TeacherTargets:
        """Open the store at ``root`` and build the table for ``frames``."""
        return cls(TeacherStore(root), frames)

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def temperature(self) -> float:
        return self.config.temperature

    def gather(self, frame_index: torch.Tensor) -> torch.Tensor | TopKTargets:
        """Targets of ``(B,)`` global frame indices: dense ``(B, S)`` float32 or top-k ``(B, k)``
        (int64 ids, float32 probabilities), on the CPU."""
        index = frame_index.cpu()
        probs = self.probs[index].float()
        return probs if self.ids is None else TopKTargets(self.ids[index].long(), probs)
