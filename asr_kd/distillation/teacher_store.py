"""The teacher store: a teacher's soft targets, computed once, read by frame.

A teacher (one model or an ensemble) is run once over a feature set and its soft targets are
kept per utterance, keyed by utterance id (never by batch position, so any sampler or frame
order can read them). Three kinds (``TeacherStoreConfig.kind``), each a set of array stores
(:mod:`asr_kd.utils.array_store`) in the store directory::

    dense    probs/  float16 (T, S) probabilities at one temperature
    topk     ids/    int16 (T, k) senone ids (int32 when S > 32768), most probable first
             probs/  float16 (T, k) their probabilities at one temperature, NOT renormalised
                     (1 - row sum = tail mass; the loss's ``topk_policy`` decides how to use it)
    lowrank  ids/    int16 (T, k) the top-k senones at the base temperature T0
             logp/   float16 (T, k) their log-probabilities at T0
             coef/   uint8 (T, c) codes of r tail-profile coefficients in the PCA basis basis.npz
                     (the leading quarter 8-bit, the others 4-bit: c = r/4 + 3r/8 bytes)
             tail/   float16 (T, n) log tail mass at each of the n temperatures the store serves
             basis.npz  PCA basis of the tail profiles, fitted on training frames before the dump
    utts.txt the shard plan of the dump (shard size, utterance order), checked on rerun

Every array store's ``meta.json`` holds the :class:`TeacherStoreConfig` (kind, teacher files,
temperatures, k, rank, combine mode, number of senones, feature directory). Shards follow the
order of the utterance list; the arrays of a shard are written in the order above and the last
one (``probs`` or ``tail``) marks a complete shard, so a rerun skips it (resumable, atomic per
shard). A dense or top-k store holds one temperature; a low-rank store serves every temperature
it was dumped with from one teacher pass (what it stores and its measured error:
:mod:`asr_kd.distillation.lowrank`).

Sizes (:func:`asr_kd.distillation.accounting.bytes_per_frame`): a dense fp16 frame costs
``2 S`` bytes, a top-k frame ``4 k`` (int16 id + fp16 probability), a low-rank frame
``4 k + c + 2 n``, e.g. 2000, 80 and 100 bytes for S = 1000, k = 20 / k = 8, r = 96 (c = 60), n = 4.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from asr_kd.distillation import lowrank
from asr_kd.distillation.lowrank import LowRankBasis, LowRankTargets
from asr_kd.distillation.soft_targets import COMBINE_MODES, TopKTargets, check_temperature
from asr_kd.features.dataset import FeatureSet
from asr_kd.models.ensemble import Ensemble, combine_logits
from asr_kd.models.inference import utterance_batches
from asr_kd.utils.array_store import META_FILE, ArrayStore, ArrayStoreWriter
from asr_kd.utils.atomic import atomic_open
from asr_kd.utils.errors import AsrKdError

PROBS_DIR, IDS_DIR, LOGP_DIR, COEF_DIR, TAIL_DIR = "probs", "ids", "logp", "coef", "tail"
BASIS_FILE = "basis.npz"
PLAN_FILE = "utts.txt"  # utts_per_shard, then the utterance order that defines the shards
STORE_KIND = "teacher_soft_targets"
STORE_KINDS = ("dense", "topk", "lowrank")
PROB_DTYPE = np.dtype("float16")
COEF_DTYPE = np.dtype("uint8")  # packed 8-bit and 4-bit codes (LowRankBasis.encode)
#: frames a low-rank store's PCA basis is fitted on (drawn from ~4x as many frames of the dump set)
DEFAULT_FIT_FRAMES = 20000
FIT_POOL = 4


@dataclass(frozen=True)
class TeacherStoreConfig:
    """What a store holds; saved in its ``meta.json`` so a resumed dump cannot mix settings.

    Attributes:
        temperature: T of the soft targets (dense, top-k); the base temperature ``T0`` of the
            stored log-probabilities (low-rank).
        num_senones: S, size of the teacher's output.
        top_k: senones kept per frame, or ``None`` for dense ``(T, S)`` probabilities.
        combine: how ensemble members were combined (:data:`COMBINE_MODES`).
        teachers: the model / ensemble files the targets come from (provenance).
        features: the feature directory the teacher ran on (provenance).
        rank: PCA coefficients per frame of a low-rank store; ``None`` for dense / top-k.
        rank_8bit: low-rank: how many of them (the leading ones) get 8-bit codes, the rest 4-bit
            (default :func:`~asr_kd.distillation.lowrank.default_rank_8bit`, a quarter).
        temperatures: low-rank: the temperatures it serves (exact tail mass stored for each);
            ``temperature`` is added if missing.
        fit_frames: low-rank: training frames its PCA basis is fitted on.
    """

    temperature: float
    num_senones: int
    top_k: int | None = 10
    combine: str = "mean_prob"
    teachers: tuple[str, ...] = field(default_factory=tuple)
    features: str = ""
    rank: int | None = None
    rank_8bit: int | None = None
    temperatures: tuple[float, ...] = field(default_factory=tuple)
    fit_frames: int = DEFAULT_FIT_FRAMES

    def __post_init__(self) -> None:
        # user settings (CLI flags, meta.json): bad values are AsrKdErrors, not bugs
        try:
            for t in (self.temperature, *self.temperatures):
                check_temperature(t)
        except ValueError as err:
            raise AsrKdError(f"teacher store: {err}") from None
        if self.num_senones < 1:
            raise AsrKdError(f"teacher store: num_senones must be positive, got {self.num_senones}")
        if self.top_k is not None and not 1 <= self.top_k <= self.num_senones:
            raise AsrKdError(f"teacher store: top_k must be in 1..{self.num_senones} (or dense), got {self.top_k}")
        if self.combine not in COMBINE_MODES:
            raise AsrKdError(f"teacher store: unknown combine mode {self.combine!r}; choose from {COMBINE_MODES}")
        if self.rank is not None:
            if self.top_k is None or self.top_k >= self.num_senones:
                raise AsrKdError(f"teacher store: a low-rank store needs top_k < {self.num_senones} senones, "
                                 f"got {self.top_k}")
            if not 0 <= self.rank < self.num_senones:
                raise AsrKdError(f"teacher store: rank must be in 0..{self.num_senones - 1}, got {self.rank}")
            if self.rank_8bit is None:  # resolved here so that meta.json holds the number
                object.__setattr__(self, "rank_8bit", lowrank.default_rank_8bit(self.rank))
            if not 0 <= self.rank_8bit <= self.rank:
                raise AsrKdError(f"teacher store: rank_8bit must be in 0..{self.rank}, got {self.rank_8bit}")
            if self.fit_frames <= self.rank:
                raise AsrKdError(f"teacher store: fitting a rank-{self.rank} basis needs more than {self.rank} "
                                 f"frames, got fit_frames={self.fit_frames}")
        elif self.temperatures or self.rank_8bit is not None:
            raise AsrKdError("teacher store: only a low-rank store serves several temperatures or has rank_8bit")

    @property
    def kind(self) -> str:
        """One of :data:`STORE_KINDS`."""
        return "dense" if self.top_k is None else "topk" if self.rank is None else "lowrank"

    @property
    def dense(self) -> bool:
        return self.top_k is None

    @property
    def served_temperatures(self) -> tuple[float, ...]:
        """The temperatures this store's targets can be used at (sorted)."""
        return tuple(sorted({self.temperature, *self.temperatures}))

    def serves(self, temperature: float) -> bool:
        return any(math.isclose(t, temperature, rel_tol=1e-6) for t in self.served_temperatures)

    def settings(self) -> list[tuple[float, str]]:
        """The teacher outputs this store is encoded from: ``(temperature, combine)`` pairs.

        Dense / top-k: its temperature. Low-rank: every served temperature, then the ensemble part
        of the tail profiles (:func:`lowrank.tail_profile`): the members' mean logits at ``T0``
        (their high-T limit) if the store serves a T above ``T0``, else ``T0`` again (no part).
        """
        served = [(t, self.combine) for t in self.served_temperatures]
        if self.kind != "lowrank":
            return served
        above = any(t > self.temperature for t in self.served_temperatures)
        return served + [(self.temperature, "mean_logits" if above else self.combine)]

    @property
    def ids_dtype(self) -> np.dtype:
        return np.dtype("int16") if self.num_senones <= np.iinfo(np.int16).max + 1 else np.dtype("int32")

    def fields(self) -> list[tuple[str, np.dtype, int]]:
        """``(directory, dtype, row width)`` of each array, in write order (the last marks a shard done)."""
        if self.kind == "dense":
            return [(PROBS_DIR, PROB_DTYPE, self.num_senones)]
        if self.kind == "topk":
            return [(IDS_DIR, self.ids_dtype, self.top_k), (PROBS_DIR, PROB_DTYPE, self.top_k)]
        return [(IDS_DIR, self.ids_dtype, self.top_k), (LOGP_DIR, PROB_DTYPE, self.top_k),
                (COEF_DIR, COEF_DTYPE, lowrank.code_bytes(self.rank, self.rank_8bit)),
                (TAIL_DIR, PROB_DTYPE, len(self.served_temperatures))]

    @property
    def bytes_per_frame(self) -> int:
        """Bytes one frame takes in the store's arrays (no headers, no basis)."""
        return sum(dtype.itemsize * width for _, dtype, width in self.fields())

    def to_meta(self) -> dict[str, Any]:
        meta = {"kind": STORE_KIND, **asdict(self), "teachers": list(self.teachers)}
        if self.rank is None:  # dense / top-k metas stay those of stores written before low-rank ones existed
            for key in ("rank", "rank_8bit", "temperatures", "fit_frames"):
                meta.pop(key)
        else:
            meta["temperatures"] = list(self.served_temperatures)
        return meta

    @classmethod
    def from_meta(cls, meta: dict[str, Any], source: str | os.PathLike) -> TeacherStoreConfig:
        if meta.get("kind") != STORE_KIND:
            raise AsrKdError(f"{source}: not a teacher store (meta kind {meta.get('kind')!r})")
        fields = {k: v for k, v in meta.items() if k != "kind"}
        return cls(**{**fields, "teachers": tuple(fields.get("teachers", ())),
                      "temperatures": tuple(fields.get("temperatures", ()))})


def encode_frames(log_probs: Sequence[torch.Tensor], config: TeacherStoreConfig,
                  basis: LowRankBasis | None = None) -> dict[str, np.ndarray]:
    """Soft targets in store form: ``{directory: (..., width) array}`` (:meth:`TeacherStoreConfig.fields`).

    Args:
        log_probs: ``(..., S)`` teacher log soft targets for each of ``config.settings()`` (one
            tensor for dense / top-k), e.g. ``(T, S)`` for one utterance or ``(B, T, S)`` for a
            padded batch; computed on their device, only the compact result moves.
        basis: the PCA basis of a low-rank store.
    """
    for x in log_probs:
        if x.shape[-1] != config.num_senones:
            raise AsrKdError(f"teacher output of shape {tuple(x.shape)}, expected (..., {config.num_senones})")
    if config.kind == "dense":
        return {PROBS_DIR: log_probs[0].float().exp().half().cpu().numpy()}
    if config.kind == "topk":
        # top-k of the log-probabilities (same order) so that only k values per frame are exponentiated
        top, ids = torch.topk(log_probs[0].float(), config.top_k, dim=-1, sorted=True)
        return {IDS_DIR: ids.cpu().numpy().astype(config.ids_dtype), PROBS_DIR: top.exp().half().cpu().numpy()}
    *served, asymptotic = log_probs
    base = served[config.served_temperatures.index(config.temperature)]
    frames = lowrank.encode(base, served, config.top_k, basis, asymptotic)
    return {IDS_DIR: frames.ids.cpu().numpy().astype(config.ids_dtype),
            LOGP_DIR: frames.top_log_probs.half().cpu().numpy(), COEF_DIR: frames.coeffs.cpu().numpy(),
            TAIL_DIR: frames.log_tail.half().cpu().numpy()}


def decode_frames(config: TeacherStoreConfig, arrays: Mapping[str, torch.Tensor],
                  basis: LowRankBasis | None = None) -> torch.Tensor | TopKTargets | LowRankTargets:
    """Store arrays of ``N`` frames (compact dtypes) -> the targets the loss reads: dense
    ``(N, S)`` float32, :class:`TopKTargets` or :class:`LowRankTargets` (int64 ids, float32 values)."""
    if config.kind == "dense":
        return arrays[PROBS_DIR].float()
    if config.kind == "topk":
        return TopKTargets(arrays[IDS_DIR].long(), arrays[PROBS_DIR].float())
    return LowRankTargets(arrays[IDS_DIR].long(), arrays[LOGP_DIR].float(), arrays[COEF_DIR],
                          arrays[TAIL_DIR].float(), config.served_temperatures, config.temperature, basis)


class TeacherStoreWriter:
    """Writes the shards of a teacher store (each shard atomic, finished shards skipped)."""

    def __init__(self, root: str | os.PathLike, config: TeacherStoreConfig) -> None:
        self.root = Path(root)
        self.config = config
        meta = config.to_meta()
        self._fields = {name: ArrayStoreWriter(self.root / name, dtype, (width,), meta)
                        for name, dtype, width in config.fields()}
        self._marker = self._fields[config.fields()[-1][0]]
        self.basis: LowRankBasis | None = None
        if config.kind == "lowrank" and self.basis_path.exists():
            self.basis = LowRankBasis.load(self.basis_path)

    @property
    def basis_path(self) -> Path:
        return self.root / BASIS_FILE

    def set_basis(self, basis: LowRankBasis, fit_utts: Sequence[str]) -> None:
        """Save the PCA basis of a low-rank store (before its first shard)."""
        c = self.config
        if (basis.rank, basis.rank_8bit, basis.num_senones) != (c.rank, c.rank_8bit, c.num_senones):
            raise AsrKdError(f"{self.root}: a basis of rank {basis.rank} ({basis.rank_8bit} 8-bit) over "
                             f"{basis.num_senones} senones does not fit this store (rank {c.rank}, {c.rank_8bit} "
                             f"8-bit, {c.num_senones} senones)")
        basis.save(self.basis_path, fit_utts)
        self.basis = basis

    def shard_done(self, shard_id: int) -> bool:
        return self._marker.shard_done(shard_id)

    def write_shard(self, shard_id: int, items: Iterable[tuple[str, Mapping[str, np.ndarray]]]) -> int:
        """Write ``(utt_id, {directory: array})`` pairs (from :func:`encode_frames`) as one shard; returns frames."""
        items = list(items)
        for name, writer in self._fields.items():  # the marker last: it makes the shard complete
            writer.write_shard(shard_id, [(u, arrays[name]) for u, arrays in items])
        return sum(len(next(iter(arrays.values()))) for _, arrays in items)


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
                        progress: bool = True, rank: int = 0, world_size: int = 1,
                        barrier: Callable[[], None] | None = None) -> dict[Path, DumpSummary]:
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
        barrier: with ``world_size > 1``, waits for every process (``torch.distributed.barrier``):
            rank 0 alone fits a low-rank store's basis, the others read it once it is saved.

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
    unfitted = [w for w in writers.values() if w.config.kind == "lowrank" and w.basis is None]
    if unfitted and world_size > 1 and barrier is None:
        raise AsrKdError("dump_teacher_stores: several processes fitting a low-rank basis need a barrier")
    if unfitted and rank == 0:  # before any shard: the coefficients are in this basis
        bases, fit_utts = fit_bases(teacher, features, ids, [w.config for w in unfitted], device, max_frames,
                                    progress)
        for writer, basis in zip(unfitted, bases):
            writer.set_basis(basis, fit_utts)
    if unfitted and world_size > 1:  # one basis for every process: the one rank 0 saved
        barrier()
        for writer in unfitted:
            writer.basis = writer.basis or LowRankBasis.load(writer.basis_path)
    frames = dict.fromkeys(writers, 0)
    pending = sorted({i for shard_ids in todo.values() for i in shard_ids})
    for shard_id in tqdm(pending, desc=f"teacher -> {len(writers)} store(s)", unit="shard", disable=not progress):
        missing = {root: writers[root] for root in writers if shard_id in todo[root]}
        encoded = _encode_shard(teacher, features, shards[shard_id], missing, device, max_frames)
        for root, writer in missing.items():
            frames[root] += writer.write_shard(shard_id, [(u, encoded[root][u]) for u in shards[shard_id]])
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


def store_settings(configs: Iterable[TeacherStoreConfig]) -> tuple[list[tuple[float, str]], list[list[int]]]:
    """The distinct ``(temperature, combine)`` settings several stores need, and for each store
    the indices of its own (:meth:`TeacherStoreConfig.settings` order)."""
    settings: list[tuple[float, str]] = []
    index = []
    for config in configs:
        wanted = config.settings()
        for s in wanted:
            if s not in settings:
                settings.append(s)
        index.append([settings.index(s) for s in wanted])
    return settings, index


def _encode_shard(teacher: nn.Module, features: FeatureSet, utt_ids: list[str],
                  writers: Mapping[Path, TeacherStoreWriter], device: str | torch.device,
                  max_frames: int) -> dict[Path, dict[str, dict[str, np.ndarray]]]:
    """Store-ready soft targets of ``utt_ids`` for every store: ``{store: {utt_id: {directory: array}}}``."""
    out: dict[Path, dict] = {root: {} for root in writers}
    settings, index = store_settings(w.config for w in writers.values())
    for batch_ids, lengths, log_probs in tempered_batches(teacher, features, utt_ids, settings, device, max_frames):
        for (root, writer), own in zip(writers.items(), index):
            try:
                arrays = encode_frames([log_probs[i] for i in own], writer.config, writer.basis)
            except AsrKdError as err:
                raise AsrKdError(f"{err} (teacher {type(teacher).__name__}, store {root})") from None
            for b, (utt_id, n) in enumerate(zip(batch_ids, lengths)):
                out[root][utt_id] = {name: a[b, :n] for name, a in arrays.items()}
    return out


def fit_sample(features: FeatureSet, utt_ids: Sequence[str], num_frames: int,
               seed: int = 0) -> dict[str, np.ndarray]:
    """Training frames to fit a PCA basis on: ``{utt_id: frame indices}``, ``num_frames`` in all,
    drawn uniformly from the frames of randomly drawn utterances holding ``FIT_POOL`` times as many
    (many utterances and speakers, a fraction of a teacher pass). Seeded: a rerun draws the same."""
    rng = np.random.default_rng(seed)
    pool, total = [], 0
    for i in rng.permutation(len(utt_ids)):
        if total >= FIT_POOL * num_frames:
            break
        pool.append(utt_ids[i])
        total += features.store.num_rows(utt_ids[i])
    chosen = np.sort(rng.choice(total, size=min(num_frames, total), replace=False))
    sample, start = {}, 0
    for utt_id in pool:
        n = features.store.num_rows(utt_id)
        picked = chosen[(chosen >= start) & (chosen < start + n)] - start
        if len(picked):
            sample[utt_id] = picked
        start += n
    return sample


def fit_bases(teacher: nn.Module, features: FeatureSet, utt_ids: Sequence[str],
              configs: Sequence[TeacherStoreConfig], device: str | torch.device = "cpu", max_frames: int = 10000,
              progress: bool = True, ensemble_part: bool = True) -> tuple[list[LowRankBasis], list[str]]:
    """PCA bases of low-rank ``configs`` from one teacher pass over a :func:`fit_sample` of ``utt_ids``.

    ``ensemble_part=False`` fits the ``T0`` part of the profiles only (as for one model): the
    design study's ablation, never a store's.

    Returns:
        ``(a basis per config, the utterances of the sample)``.
    """
    sample = fit_sample(features, utt_ids, max(c.fit_frames for c in configs))
    wanted = [[(c.temperature, c.combine), c.settings()[-1] if ensemble_part else (c.temperature, c.combine)]
              for c in configs]
    settings = list(dict.fromkeys(s for pair in wanted for s in pair))
    profiles: list[list[torch.Tensor]] = [[] for _ in configs]
    batches = tempered_batches(teacher, features, list(sample), settings, device, max_frames)
    for batch_ids, _, log_probs in tqdm(batches, desc="teacher -> PCA basis sample", unit="batch",
                                        disable=not progress):
        rows = [_sample_rows(lp, batch_ids, sample) for lp in log_probs]  # (n, S) per setting
        for config, (base, asymptotic), out in zip(configs, wanted, profiles):
            # fp16 while sampling: 2 S values x fit_frames per store (0.6 GB at 8000 senones)
            out.append(lowrank.tail_profile(rows[settings.index(base)], config.top_k,
                                            rows[settings.index(asymptotic)]).half().cpu())
    bases = []
    for config, out in zip(configs, profiles):
        x = torch.cat(out).float()
        if len(x) > config.fit_frames:  # a store fitted on fewer frames than the largest one asks
            x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[: config.fit_frames]]
        bases.append(lowrank.fit_basis(x, config.rank, config.rank_8bit))
    return bases, list(sample)


def _sample_rows(log_probs: torch.Tensor, batch_ids: Sequence[str], sample: Mapping[str, np.ndarray]) -> torch.Tensor:
    """The sampled frames of a padded ``(B, T, S)`` batch, concatenated: ``(n, S)``."""
    return torch.cat([log_probs[b, torch.as_tensor(sample[u], device=log_probs.device)]
                      for b, u in enumerate(batch_ids)])


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
        marker = next((d for d in (TAIL_DIR, PROBS_DIR) if (self.root / d / META_FILE).exists()), None)
        if marker is None:
            raise AsrKdError(f"{self.root}: not a teacher store (no {PROBS_DIR}/ or {TAIL_DIR}/); "
                             "run `asr-kd distill dump-teacher`")
        marker_store = ArrayStore(self.root / marker)
        self.config = TeacherStoreConfig.from_meta(marker_store.meta, marker_store.root)
        self.fields = {name: marker_store if name == marker else ArrayStore(self.root / name)
                       for name, _, _ in self.config.fields()}
        self._marker = marker_store
        for name, arrays in self.fields.items():
            if not set(marker_store.keys()) <= set(arrays.keys()):
                raise AsrKdError(f"{self.root}: {name}/ lacks utterances that {marker}/ has (store damaged)")
        self.basis = LowRankBasis.load(self.root / BASIS_FILE) if self.config.kind == "lowrank" else None
        #: utterances a low-rank store's basis was fitted on (measure fidelity on others)
        self.fit_utts = lowrank.fit_utterances(self.root / BASIS_FILE) if self.basis is not None else []

    @property
    def probs(self) -> ArrayStore | None:
        """The ``probs/`` array store (dense / top-k)."""
        return self.fields.get(PROBS_DIR)

    @property
    def ids(self) -> ArrayStore | None:
        """The ``ids/`` array store (top-k / low-rank)."""
        return self.fields.get(IDS_DIR)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._marker

    def __len__(self) -> int:
        return len(self._marker)

    def keys(self) -> list[str]:
        return self._marker.keys()

    def num_rows(self, utt_id: str) -> int:
        return self._marker.num_rows(utt_id)

    def total_rows(self) -> int:
        return self._marker.total_rows()

    def utterance(self, utt_id: str) -> torch.Tensor | TopKTargets | LowRankTargets:
        """Soft targets of one utterance's ``T`` frames (see :func:`decode_frames`)."""
        arrays = {name: torch.from_numpy(np.array(store[utt_id])) for name, store in self.fields.items()}
        return decode_frames(self.config, arrays, self.basis)

    def nbytes(self) -> int:
        """Bytes on disk of the shard arrays (and of a low-rank store's basis)."""
        basis = (self.root / BASIS_FILE).stat().st_size if self.basis is not None else 0
        return sum(store.nbytes() for store in self.fields.values()) + basis

    def measured_bytes_per_frame(self) -> float:
        """:meth:`nbytes` per stored frame (includes the ``.npy`` headers and the basis)."""
        return self.nbytes() / max(self.total_rows(), 1)

    def _column_means(self, name: str, transform, chunk_rows: int = 65536) -> np.ndarray:
        """Mean over all frames of ``transform(rows of <name>/ as float64)``, shard by shard."""
        total, rows = 0.0, 0
        for shard_path in sorted(self.fields[name].root.glob("shard-*.npy")):
            shard = np.load(shard_path, mmap_mode="r")
            for start in range(0, len(shard), chunk_rows):
                total = total + transform(np.asarray(shard[start : start + chunk_rows], dtype=np.float64)).sum(0)
            rows += len(shard)
        return np.asarray(total) / max(rows, 1)

    def mean_kept_mass(self) -> float | None:
        """Mean over frames of the stored probability mass: 1 for dense, 1 - tail mass for top-k;
        ``None`` for a low-rank store (it keeps all the mass, how faithfully: ``distill fidelity``)."""
        if self.config.kind == "lowrank":
            return None
        return float(self._column_means(PROBS_DIR, lambda rows: rows.sum(-1)))

    def mean_top_k_mass(self) -> dict[float, float]:
        """Mean over frames of the teacher's mass on the stored top-k senones, per served temperature."""
        if self.config.kind == "lowrank":
            means = self._column_means(TAIL_DIR, lambda rows: -np.expm1(rows))
            return {t: float(m) for t, m in zip(self.config.served_temperatures, means)}
        return {self.config.temperature: float(self.mean_kept_mass())}


class FrameOrder(Protocol):
    """What a :class:`~asr_kd.features.dataset.FrameTable` tells about its row order."""

    utt_ids: Sequence[str]
    offsets: np.ndarray  # (U + 1,) first frame of each utterance, then the total


class TeacherTargets:
    """A store's soft targets for every frame of a frame table, in RAM, in the table's row order.

    Row ``i`` belongs to the same frame as row ``i`` of the :class:`FrameTable` (utterances in
    ``FrameTable.utt_ids`` order, concatenated), so a training batch's ``frame_index`` gathers
    its targets. Tables keep the store's compact dtypes: ``N * bytes_per_frame`` bytes of RAM
    (e.g. 970k frames: 78 MB at k = 20, 97 MB low-rank at k = 8, r = 96, 1.9 GB dense with
    1000 senones).

    Attributes:
        config: the store's :class:`TeacherStoreConfig` (kind, temperatures, k, ...).
        fields: ``{directory: (N, width) tensor}`` in the store's dtypes (:meth:`TeacherStoreConfig.fields`).
        basis: a low-rank store's :class:`LowRankBasis`, else ``None``.
    """

    def __init__(self, store: TeacherStore, frames: FrameOrder) -> None:
        self.config = store.config
        self.basis = store.basis
        missing = [u for u in frames.utt_ids if u not in store]
        if missing:
            raise AsrKdError(
                f"{len(missing)} of {len(frames.utt_ids)} utterances have no teacher targets in {store.root}, "
                f"e.g. {missing[:3]} (dump the teacher for this feature set)"
            )
        num_frames = int(frames.offsets[-1])
        arrays = {name: np.empty((num_frames, width), dtype=dtype) for name, dtype, width in self.config.fields()}
        for utt_id, start, end in zip(frames.utt_ids, frames.offsets[:-1], frames.offsets[1:]):
            if store.num_rows(utt_id) != end - start:
                raise AsrKdError(
                    f"{utt_id}: {end - start} frames in the feature table but {store.num_rows(utt_id)} in teacher "
                    f"store {store.root} (targets dumped from other features?)"
                )
            for name, array in arrays.items():
                array[start:end] = store.fields[name][utt_id]
        self.fields = {name: torch.from_numpy(a) for name, a in arrays.items()}
        self._bases: dict[str, LowRankBasis] = {}  # the basis on each device it was gathered to

    @classmethod
    def load(cls, root: str | os.PathLike, frames: FrameOrder) -> TeacherTargets:
        """Open the store at ``root`` and build the table for ``frames``."""
        return cls(TeacherStore(root), frames)

    def __len__(self) -> int:
        return len(next(iter(self.fields.values())))

    @property
    def probs(self) -> torch.Tensor | None:
        """``(N, k)`` or ``(N, S)`` float16 probabilities of a top-k / dense store."""
        return self.fields.get(PROBS_DIR)

    @property
    def ids(self) -> torch.Tensor | None:
        """``(N, k)`` int16/int32 senone ids of a top-k / low-rank store."""
        return self.fields.get(IDS_DIR)

    @property
    def temperature(self) -> float:
        return self.config.temperature

    def gather(self, frame_index: torch.Tensor,
               device: torch.device | str | None = None) -> torch.Tensor | TopKTargets | LowRankTargets:
        """Targets of ``(B,)`` global frame indices (:func:`decode_frames`), on the CPU or moved to
        ``device`` (a low-rank store's basis is moved there once, not every batch); read a
        low-rank batch at a temperature with ``.probs(T)``."""
        index = frame_index.cpu()
        targets = decode_frames(self.config, {name: a[index] for name, a in self.fields.items()},
                                self._basis_on(device))
        return targets if device is None else targets.to(device)

    def _basis_on(self, device: torch.device | str | None) -> LowRankBasis | None:
        if self.basis is None or device is None:
            return self.basis
        key = str(torch.device(device))
        if key not in self._bases:
            self._bases[key] = self.basis.to(device)
        return self._bases[key]
