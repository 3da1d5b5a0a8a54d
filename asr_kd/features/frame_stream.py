"""Training frames read from the stores chunk by chunk: memory set by a chunk size, not by the corpus.

:class:`~asr_kd.features.dataset.FrameTable` holds every frame of a set in RAM (float32
features plus three int64 per frame: 184 bytes/frame at D = 40, 63 GB for LibriSpeech 960 h)
and every DDP rank builds all of it. A :class:`FrameStream` serves the same frames from the
same stores (features, alignment, and any named per-frame arrays such as a teacher's soft
targets, each an :class:`~asr_kd.utils.array_store.ArrayStore` keyed by utterance id):

* **Ranks read disjoint parts.** The training utterances, in the order that defines global
  frame indices (the trainer's sorted ids, i.e. ``FrameTable`` row order), are cut into
  ``world_size`` contiguous parts of equal frame counts (to within one utterance); rank ``r``
  reads only part ``r`` (so also only those shard files).
* **Chunks.** Every epoch a rank shuffles its utterances (seeded by the epoch seed) and cuts
  them into chunks of about ``chunk_frames`` frames. A chunk is read from disk (one file read
  per utterance and store, no memory map, see :meth:`ArrayStore.read`), normalised (CMVN) and
  held in compact dtypes on the training device: fp16 features, int16 targets when the senones
  fit, one int32 chunk-local utterance index per frame, the extra arrays in their store dtypes,
  plus the int64 frame permutation (:meth:`FrameStream.bytes_per_frame`: 94 bytes at D = 40,
  +80 for a top-20 teacher store). Its frames are permuted, minibatches are slices of the
  permutation and their context windows are gathered where the chunk lives (on the GPU when
  training there). A background thread reads the next chunk meanwhile, so a rank holds about two
  chunks. This is the frame randomiser of Kaldi's nnet1 (``--randomizer-size``) and the buffer of
  nnet3's ``nnet3-shuffle-egs``, with a buffer of millions of frames: a 2M-frame chunk mixes
  ~1600 utterances drawn from the whole part.
* **Resident part.** With ``chunk_frames = 0``, or when a rank's part fits in one chunk, the
  part is one chunk loaded once (in pieces of ``piece_frames``, so host memory stays bounded
  while it fills a GPU) and kept across epochs; its frames are shuffled globally every epoch as
  ``FrameTable.minibatches`` does. One process on the CPU with ``dtype=float32`` then yields
  exactly the in-memory table's batches (tested). LibriSpeech 960 h at fp16 with a top-20
  teacher is ~60 GB: resident on one 80-141 GB GPU.

Global frame index: position of a frame in the concatenation of all training utterances in
corpus order (``FrameTable`` row order), so anything keyed by table rows still lines up.
Determinism: chunk contents, their order and the permutations are functions of
``(seed, rank, chunk)`` only, so a resumed run rebuilds any batch of any epoch exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from asr_kd.features.dataset import FeatureSet
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.errors import AsrKdError

#: Default frames per chunk: ~5.6 h of audio, 190 MB at 94 bytes/frame.
DEFAULT_CHUNK_FRAMES = 2_000_000
#: Frames read into host memory at a time while a resident part is copied to a GPU.
DEFAULT_PIECE_FRAMES = 1_000_000
FEATURE_DTYPES = ("float16", "float32")

#: ``decode(arrays)``: the tensors of one named array set for a batch's frames -> what the batch carries.
Decode = Callable[[dict[str, torch.Tensor]], Any]


@dataclass(frozen=True)
class StreamedArrays:
    """A named set of per-frame arrays carried into every batch as ``batch[name]``.

    Attributes:
        stores: key -> store of ``(T, ...)`` arrays, one per utterance, aligned with the features.
        decode: turns ``{key: (N, ...) tensor in the store's dtype}`` into the batch value
            (e.g. top-k teacher ids + probabilities -> the loss's soft targets); ``None`` keeps the dict.
    """

    stores: Mapping[str, ArrayStore]
    decode: Decode | None = None


def torch_dtype(dtype: np.dtype | str) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


class FrameCorpus:
    """The training utterances and their per-frame stores, indexed without reading a frame.

    Args:
        features: normalised features (store, speakers, CMVN mode).
        utt_ids: the utterances in corpus order (defines global frame indices).
        targets: frame targets aligned with the features (an alignment store), or ``None``.
        targets_dtype: dtype the targets are held in (e.g. ``int16`` for <= 32767 senones);
            default: the store's. Values are checked to fit by :meth:`max_target`.

    Attributes:
        lengths: ``(U,)`` int64 frames per utterance.
        offsets: ``(U + 1,)`` int64 global index of each utterance's first frame, then the total.
        extras: name -> :class:`StreamedArrays` attached with :meth:`attach`.
    """

    def __init__(self, features: FeatureSet, utt_ids: Sequence[str], targets: ArrayStore | None = None,
                 targets_dtype: str | None = None) -> None:
        self.features, self.utt_ids, self.targets = features, list(utt_ids), targets
        if not self.utt_ids:
            raise AsrKdError(f"{features.dir}: no utterances to stream")
        missing = [u for u in self.utt_ids if u not in features.store]
        if missing:
            raise AsrKdError(f"{len(missing)} utterances have no features in {features.dir}, e.g. {missing[:3]}")
        self.lengths = np.fromiter((features.store.num_rows(u) for u in self.utt_ids), np.int64, len(self.utt_ids))
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.targets_dtype = np.dtype(targets_dtype) if targets_dtype else (targets.dtype if targets else None)
        if targets is not None:
            self._check_rows(targets, "targets")
        self.extras: dict[str, StreamedArrays] = {}
        self._frozen = False

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def dim(self) -> int:
        return self.features.dim

    def _check_rows(self, store: ArrayStore, what: str) -> None:
        """Every utterance must have one row per feature frame in ``store`` (checked on the indexes only)."""
        for utt_id, n in zip(self.utt_ids, self.lengths):
            if utt_id not in store:
                raise AsrKdError(f"utterance {utt_id} has features but no {what} in {store.root}")
            if store.num_rows(utt_id) != n:
                raise AsrKdError(f"{utt_id}: {n} feature frames but {store.num_rows(utt_id)} rows of {what} in "
                                 f"{store.root} (features and {what} come from different runs?)")

    def attach(self, name: str, arrays: StreamedArrays) -> None:
        """Carry ``arrays`` into every batch as ``batch[name]``; only before the first read."""
        if self._frozen:
            raise AsrKdError(f"per-frame arrays {name!r} attached after frames were read; attach them first")
        if name in self.extras or name in ("inputs", "targets", "frame_index", "mask"):
            raise AsrKdError(f"per-frame arrays {name!r}: the name is taken")
        for key, store in arrays.stores.items():
            self._check_rows(store, f"{name}/{key}")
        self.extras[name] = arrays

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None, dict[str, dict[str, np.ndarray]]]:
        """Utterance ``index``: ``(feats (T, D) float32 normalised, targets (T,) or None, {name: {key: (T, ...)}})``."""
        self._frozen = True
        utt_id = self.utt_ids[index]
        fs = self.features
        feats = fs.cmvn.normalize(fs.store.read(utt_id), fs.utt2spk.get(utt_id), fs.cmvn_mode)
        targets = self.targets.read(utt_id) if self.targets is not None else None
        extras = {name: {key: store.read(utt_id) for key, store in a.stores.items()} for name, a in self.extras.items()}
        return feats, targets, extras

    def max_target(self, utts: np.ndarray | None = None) -> int:
        """Largest target of ``utts`` (default all); also checks they fit :attr:`targets_dtype`."""
        if self.targets is None:
            raise AsrKdError(f"{self.features.dir}: no targets to check")
        indices = range(len(self.utt_ids)) if utts is None else utts
        top = max(int(self.targets.read(self.utt_ids[i]).max(initial=-1)) for i in indices)
        if top > np.iinfo(self.targets_dtype).max:
            raise AsrKdError(f"{self.targets.root}: target {top} does not fit {self.targets_dtype}")
        return top

    def row_bytes(self) -> dict[str, int]:
        """Bytes per frame of each per-frame array a chunk holds (features at 1 byte/value: scale by dtype)."""
        out = {"targets": self.targets_dtype.itemsize if self.targets is not None else 0}
        for name, a in self.extras.items():
            for key, store in a.stores.items():
                out[f"{name}/{key}"] = store.dtype.itemsize * int(np.prod(store.trailing_shape, dtype=np.int64))
        return out


@dataclass
class HostFrames:
    """The frames of some utterances read into host memory (numpy, compact dtypes).

    Attributes:
        utts: ``(Uc,)`` corpus indices, in frame order.
        feats: ``(C, D)``; targets ``(C,)`` or None; extras name -> key -> ``(C, ...)``.
    """

    utts: np.ndarray
    feats: np.ndarray
    targets: np.ndarray | None
    extras: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def read_frames(corpus: FrameCorpus, utts: np.ndarray, dtype: str, threads: int = 1) -> HostFrames:
    """Read utterances ``utts`` (corpus indices) into preallocated host arrays.

    ``threads`` > 1 reads utterances in parallel (file reads and numpy arithmetic release the
    GIL): one thread reads ~1M frames/s of features + targets + a top-20 teacher.
    """
    lengths = corpus.lengths[utts]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    total = int(starts[-1])
    feats = torch.empty((total, corpus.dim), dtype=torch_dtype(dtype))  # torch casts to fp16 ~3x faster than numpy
    targets = np.empty(total, dtype=corpus.targets_dtype) if corpus.targets is not None else None
    extras = {name: {key: np.empty((total, *s.trailing_shape), dtype=s.dtype) for key, s in a.stores.items()}
              for name, a in corpus.extras.items()}

    def fill(i: int) -> None:
        lo, hi = starts[i], starts[i + 1]
        f, t, e = corpus.read(int(utts[i]))
        feats[lo:hi].copy_(torch.from_numpy(f))
        if targets is not None:
            targets[lo:hi] = t
        for name, arrays in e.items():
            for key, array in arrays.items():
                extras[name][key][lo:hi] = array

    if threads > 1 and len(utts) > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="frame-read") as pool:
            for _ in pool.map(fill, range(len(utts))):  # consumed, so that a read error is raised here
                pass
    else:
        for i in range(len(utts)):
            fill(i)
    return HostFrames(np.asarray(utts, dtype=np.int64), feats.numpy(), targets, extras)


class FrameChunk:
    """Frames of a set of utterances on one device, indexed by chunk-local frame position.

    Attributes:
        feats: ``(C, D)`` float16/float32 normalised features.
        targets: ``(C,)`` int16/int32 targets or ``None``.
        extras: name -> key -> ``(C, ...)`` arrays in their store dtypes.
        utt_of_frame: ``(C,)`` int32 chunk-local utterance of each frame.
        starts: ``(Uc + 1,)`` int64 chunk-local first frame of each utterance, then ``C``.
        global_starts: ``(Uc,)`` int64 global index of each utterance's first frame.
    """

    def __init__(self, feats: torch.Tensor, targets: torch.Tensor | None, extras: dict[str, dict[str, torch.Tensor]],
                 lengths: np.ndarray, global_starts: np.ndarray) -> None:
        device = feats.device
        self.feats, self.targets, self.extras = feats, targets, extras
        lengths_t = torch.as_tensor(lengths, dtype=torch.int64, device=device)
        self.starts = torch.cat([torch.zeros(1, dtype=torch.int64, device=device), lengths_t.cumsum(0)])
        # built on the device: a resident part must not pass through host memory frame by frame
        self.utt_of_frame = torch.repeat_interleave(torch.arange(len(lengths), dtype=torch.int32, device=device),
                                                    lengths_t)
        self.global_starts = torch.as_tensor(global_starts, dtype=torch.int64).to(device)
        self._by_global: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def from_host(cls, host: HostFrames, corpus: FrameCorpus, device: torch.device) -> FrameChunk:
        def put(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device)

        return cls(put(host.feats), None if host.targets is None else put(host.targets),
                   {n: {k: put(a) for k, a in arrays.items()} for n, arrays in host.extras.items()},
                   corpus.lengths[host.utts], corpus.offsets[host.utts])

    @classmethod
    def load(cls, corpus: FrameCorpus, utts: np.ndarray, device: torch.device, dtype: str,
             piece_frames: int = DEFAULT_PIECE_FRAMES, threads: int = 1) -> FrameChunk:
        """Read ``utts`` straight into a chunk on ``device``: on a GPU in host pieces of ``piece_frames``."""
        if device.type == "cpu":
            return cls.from_host(read_frames(corpus, utts, dtype, threads), corpus, device)
        return cls.load_in_pieces(corpus, utts, device, dtype, piece_frames, threads)

    @classmethod
    def load_in_pieces(cls, corpus: FrameCorpus, utts: np.ndarray, device: torch.device, dtype: str,
                       piece_frames: int, threads: int = 1) -> FrameChunk:
        """Allocate the chunk on ``device`` and fill it from host reads of at most ``piece_frames``
        frames (at least one utterance) at a time, so host memory stays bounded whatever the chunk."""
        lengths = corpus.lengths[utts]
        total = int(lengths.sum())
        feats = torch.empty((total, corpus.dim), dtype=torch_dtype(dtype), device=device)
        targets = (torch.empty(total, dtype=torch_dtype(corpus.targets_dtype), device=device)
                   if corpus.targets is not None else None)
        extras = {name: {key: torch.empty((total, *s.trailing_shape), dtype=torch_dtype(s.dtype), device=device)
                         for key, s in a.stores.items()} for name, a in corpus.extras.items()}
        ends = np.cumsum(lengths)
        first, lo = 0, 0
        while first < len(utts):
            last = max(int(np.searchsorted(ends, lo + piece_frames, side="right")), first + 1)
            piece = read_frames(corpus, utts[first:last], dtype, threads)
            hi = lo + len(piece.feats)
            feats[lo:hi] = torch.from_numpy(piece.feats)
            if targets is not None:
                targets[lo:hi] = torch.from_numpy(piece.targets)
            for name, arrays in piece.extras.items():
                for key, array in arrays.items():
                    extras[name][key][lo:hi] = torch.from_numpy(array)
            first, lo = last, hi
        return cls(feats, targets, extras, lengths, corpus.offsets[utts])

    def __len__(self) -> int:
        return len(self.feats)

    @property
    def device(self) -> torch.device:
        return self.feats.device

    def nbytes(self) -> int:
        """Bytes of the per-frame tensors (features, targets, extras, utterance index)."""
        tensors = [self.feats, self.utt_of_frame, *(t for a in self.extras.values() for t in a.values())]
        if self.targets is not None:
            tensors.append(self.targets)
        return sum(t.numel() * t.element_size() for t in tensors)

    def context_windows(self, local: torch.Tensor, left: int, right: int) -> torch.Tensor:
        """``(B, left + 1 + right, D)`` float32 windows centred on chunk frames ``local`` ``(B,)``,
        clamped to each frame's utterance (edge frames repeated, as :meth:`FrameTable.context_windows`)."""
        utt = self.utt_of_frame.index_select(0, local).long()
        first = self.starts.index_select(0, utt)[:, None]
        last = self.starts.index_select(0, utt + 1)[:, None] - 1
        offsets = torch.arange(-left, right + 1, dtype=torch.int64, device=local.device)
        idx = torch.clamp(local[:, None] + offsets[None, :], min=first, max=last)
        # index_select of the flat index: ~3x faster on the CPU than advanced indexing (B, W)
        return self.feats.index_select(0, idx.view(-1)).view(*idx.shape, -1).float()

    def frame_index(self, local: torch.Tensor) -> torch.Tensor:
        """``(B,)`` int64 global frame indices of chunk frames ``local``."""
        utt = self.utt_of_frame.index_select(0, local).long()
        return self.global_starts.index_select(0, utt) + (local - self.starts.index_select(0, utt))

    def local_index(self, frame_index: torch.Tensor) -> torch.Tensor:
        """Chunk positions of global frames ``frame_index`` ``(B,)``; every frame must be in the chunk."""
        if self._by_global is None:
            order = torch.argsort(self.global_starts)
            self._by_global = self.global_starts[order], order
        sorted_starts, order = self._by_global
        frame_index = frame_index.to(self.device)
        pos = (torch.searchsorted(sorted_starts, frame_index, right=True) - 1).clamp(min=0)
        utt = order[pos]
        within = frame_index - self.global_starts[utt]
        if bool(((within < 0) | (within >= self.starts[utt + 1] - self.starts[utt])).any()):
            raise AsrKdError("frames asked for are not in the current chunk of the frame stream "
                             "(per-frame lookups by global index need the chunk of the last built batch)")
        return self.starts[utt] + within

    def take(self, local: torch.Tensor) -> tuple[torch.Tensor | None, dict[str, dict[str, torch.Tensor]]]:
        """Targets (int64) and extra arrays (store dtypes) of chunk frames ``local``."""
        targets = None if self.targets is None else self.targets.index_select(0, local).long()
        extras = {n: {k: t.index_select(0, local) for k, t in arrays.items()} for n, arrays in self.extras.items()}
        return targets, extras


def chunk_seed(seed: int, rank: int, chunk: int) -> int:
    """Seed of the frame permutation of one chunk.

    Rank 0's first chunk uses the epoch seed itself, so that a single resident chunk in one
    process is permuted exactly as ``FrameTable.minibatches(seed=seed)`` permutes the table.
    """
    if rank == 0 and chunk == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank, chunk]).generate_state(1, np.uint64)[0] >> 1)


class FrameStream:
    """One rank's view of a :class:`FrameCorpus`: its part, cut into chunks per epoch.

    Args:
        corpus: all training utterances and their stores (every rank opens the same indexes).
        rank, world_size: this process and the number of processes (DDP).
        chunk_frames: frames per chunk; ``0`` keeps the rank's whole part resident.
        device: where chunks live and windows are gathered (the training device).
        dtype: feature dtype in chunks, ``float16`` (half the bytes; log-mel after CMVN loses
            nothing that matters at fp16's 3 significant digits) or ``float32``.
        prefetch: read the next chunk in a background thread.
        piece_frames: host frames per copy while a resident part is moved to a GPU.
        read_threads: threads reading the utterances of a chunk (:func:`read_frames`).
    """

    def __init__(self, corpus: FrameCorpus, rank: int = 0, world_size: int = 1,
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES, device: torch.device | str = "cpu",
                 dtype: str = "float16", prefetch: bool = True, piece_frames: int = DEFAULT_PIECE_FRAMES,
                 read_threads: int = 1) -> None:
        if dtype not in FEATURE_DTYPES:
            raise AsrKdError(f"stream feature dtype must be one of {FEATURE_DTYPES}, got {dtype!r}")
        if chunk_frames < 0 or not 0 <= rank < world_size:
            raise AsrKdError(f"bad frame stream settings: chunk_frames={chunk_frames}, rank {rank} of {world_size}")
        if len(corpus.utt_ids) < world_size:
            raise AsrKdError(f"{len(corpus.utt_ids)} utterances cannot be split over {world_size} processes")
        self.corpus, self.rank, self.world_size = corpus, rank, world_size
        self.chunk_frames, self.device, self.dtype = chunk_frames, torch.device(device), dtype
        self.piece_frames, self.read_threads = piece_frames, read_threads
        self.parts = partition(corpus.lengths, world_size)
        self._layouts: dict[tuple[int, bool], list[list[np.ndarray]]] = {}
        self._current: tuple[tuple, FrameChunk, torch.Tensor] | None = None
        self._resident: FrameChunk | None = None
        self._pending: tuple[tuple, Future] | None = None
        # one reader thread: reads happen there or in the caller, never both at once (see _chunk_data)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="frame-stream") if prefetch else None

    # -- what every rank can compute without reading frames --------------------------------------------------

    def __len__(self) -> int:
        """Frames of the whole corpus (all ranks)."""
        return len(self.corpus)

    @property
    def dim(self) -> int:
        return self.corpus.dim

    def resident(self, rank: int) -> bool:
        """Whether ``rank``'s part is one chunk kept across epochs."""
        return self.chunk_frames == 0 or int(self.corpus.lengths[self.parts[rank]].sum()) <= self.chunk_frames

    def chunks(self, seed: int, rank: int, shuffle: bool = True) -> list[np.ndarray]:
        """Corpus indices of the utterances of each chunk of ``rank``'s epoch ``seed``."""
        key = (seed, shuffle)
        if key not in self._layouts:
            self._layouts = {key: [self._cut(seed, r, shuffle) for r in range(self.world_size)]}
        return self._layouts[key][rank]

    def _cut(self, seed: int, rank: int, shuffle: bool) -> list[np.ndarray]:
        part = self.parts[rank]
        if self.resident(rank):
            return [part]
        order = np.random.default_rng([seed, rank]).permutation(part) if shuffle else part
        ends = np.cumsum(self.corpus.lengths[order])
        cuts, first = [], 0
        while first < len(order):
            base = ends[first - 1] if first else 0
            last = max(int(np.searchsorted(ends, base + self.chunk_frames, side="right")), first + 1)
            cuts.append(order[first:last])
            first = last
        return cuts

    def chunk_sizes(self, seed: int, rank: int, shuffle: bool = True) -> list[int]:
        """Frames of each chunk of ``rank``'s epoch ``seed``."""
        return [int(self.corpus.lengths[c].sum()) for c in self.chunks(seed, rank, shuffle)]

    def bytes_per_frame(self) -> int:
        """Device bytes per frame of a chunk: features, targets, extras, utterance index, permutation."""
        return (self.dim * np.dtype(self.dtype).itemsize + sum(self.corpus.row_bytes().values())
                + 4 + 8)  # int32 utterance of each frame + int64 permutation

    def max_target(self) -> int:
        """Largest target in this rank's part (reads its targets once)."""
        return self.corpus.max_target(self.parts[self.rank])

    def attach(self, name: str, arrays: StreamedArrays) -> None:
        """Carry per-frame ``arrays`` into every batch as ``batch[name]`` (see :meth:`FrameCorpus.attach`)."""
        self.corpus.attach(name, arrays)

    # -- this rank's chunks ----------------------------------------------------------------------------------

    def chunk(self, seed: int, index: int, shuffle: bool = True) -> tuple[FrameChunk, torch.Tensor]:
        """This rank's chunk ``index`` of epoch ``seed`` and its ``(C,)`` int64 frame order (on the device)."""
        key = (seed, shuffle, index)
        if self._current is not None and self._current[0] == key:
            return self._current[1], self._current[2]
        chunk = self._chunk_data(seed, index, shuffle)
        if shuffle:
            generator = torch.Generator(device=self.device).manual_seed(chunk_seed(seed, self.rank, index))
            order = torch.randperm(len(chunk), generator=generator, device=self.device)
        else:
            order = torch.arange(len(chunk), device=self.device)
        self._current = (key, chunk, order)
        if index + 1 < len(self.chunks(seed, self.rank, shuffle)) and self._pool is not None:
            utts = self.chunks(seed, self.rank, shuffle)[index + 1]
            read = self._pool.submit(read_frames, self.corpus, utts, self.dtype, self.read_threads)
            self._pending = ((seed, shuffle, index + 1), read)
        return chunk, order

    def _chunk_data(self, seed: int, index: int, shuffle: bool) -> FrameChunk:
        if self.resident(self.rank):
            if self._resident is None:
                self._resident = FrameChunk.load(self.corpus, self.parts[self.rank], self.device, self.dtype,
                                                 self.piece_frames, self.read_threads)
            return self._resident
        self._current = None  # release the previous chunk before the next one is placed
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == (seed, shuffle, index):
            host = pending[1].result()
        else:
            if pending is not None:
                pending[1].result()  # never leave a read running behind the one we start
            host = read_frames(self.corpus, self.chunks(seed, self.rank, shuffle)[index], self.dtype, self.read_threads)
        return FrameChunk.from_host(host, self.corpus, self.device)

    def drain(self) -> None:
        """Wait until the background read of the next chunk (if one runs) has finished."""
        if self._pending is not None:
            self._pending[1].result()

    def context_windows(self, frame_index: torch.Tensor, left: int, right: int) -> torch.Tensor:
        """Windows of global frames held by the current chunk (what an online teacher needs)."""
        if self._current is None:
            raise AsrKdError("no chunk of the frame stream is loaded yet")
        chunk = self._current[1]
        return chunk.context_windows(chunk.local_index(frame_index), left, right)


def partition(lengths: np.ndarray, world_size: int) -> list[np.ndarray]:
    """Cut utterances ``0..U-1`` into ``world_size`` contiguous parts of about equal frames.

    Part ``r`` starts at the first utterance whose first frame is at or after ``r N / W``
    (``N`` frames in all), so parts differ by less than one utterance's frames; none is empty
    (``U >= W``).
    """
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    total, count = int(np.sum(lengths)), len(lengths)
    bounds = [0]
    for r in range(1, world_size):
        b = int(np.searchsorted(starts, r * total / world_size, side="left"))
        bounds.append(min(max(b, bounds[-1] + 1), count - (world_size - r)))
    bounds.append(count)
    return [np.arange(bounds[r], bounds[r + 1], dtype=np.int64) for r in range(world_size)]
