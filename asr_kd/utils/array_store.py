"""A sharded, memory-mapped store of per-utterance arrays keyed by utterance id.

One store holds one kind of array (log-mel features ``(T, D)`` float32, senone alignments
``(T,)`` int32, teacher top-k ids ``(T, k)`` ...). Layout of a store directory::

    meta.json                 dtype, trailing shape, free-form metadata of the producer
    shard-00000.npy           all arrays of shard 0 concatenated along axis 0
    shard-00000.source        optional: a digest of what the shard was made from
    shard-00000.index.tsv     utt_id <TAB> offset <TAB> num_rows, one line per utterance

A shard is complete when its index file exists: the ``.npy`` (and ``.source``) are written
first, all through a temporary file and :func:`os.replace`, so a killed writer never leaves a
corrupt shard and rerunning skips complete shards (resumable). A producer that passes a
``source`` digest (e.g. feature extraction: audio files, their sizes and mtimes, the fbank
settings) gets a shard redone when its inputs changed. Reading one utterance touches only its
rows of one memory-mapped shard (the pattern of lhotse's ``TemporalArray`` / Kaldi's ark+scp).
Streaming readers use :meth:`ArrayStore.read` instead, which copies the rows with one file
read and keeps no map: a memory map keeps every page it touched in the process's resident
memory, so a pass over a corpus through maps grows with the corpus.

Floating-point stores never hold NaN or Inf: :meth:`ArrayStoreWriter.write_shard` refuses
them and :class:`ArrayStore` checks each shard once, when it first reads from it (one pass
over the shard, in blocks of :data:`FINITE_CHECK_ROWS` rows), naming the utterance and file;
:meth:`ArrayStore.read` checks the rows it reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr_kd.utils.atomic import atomic_open, write_json, write_with
from asr_kd.utils.errors import AsrKdError

META_FILE = "meta.json"
#: Rows per block of the finiteness check of a shard (bounds its temporary memory).
FINITE_CHECK_ROWS = 16384


def shard_name(shard_id: int) -> str:
    return f"shard-{shard_id:05d}"


@dataclass(frozen=True)
class ArrayLocation:
    """Where one utterance's rows live: ``shard`` file, first row ``offset``, ``num_rows``."""

    shard: int
    offset: int
    num_rows: int


class ArrayStoreWriter:
    """Writes shards of a store; each :meth:`write_shard` call is atomic and idempotent.

    Args:
        root: store directory (created with the first shard, so that a run failing before it
            leaves nothing behind).
        dtype: numpy dtype of every array.
        trailing_shape: shape of one row, e.g. ``(40,)`` for 40-dim features, ``()`` for ids.
        meta: producer metadata saved in ``meta.json`` (feature config, senone count, ...).
            If the store already exists, ``dtype``/``trailing_shape``/``meta`` must match
            so that a resumed run cannot silently mix two configurations.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        dtype: np.dtype | str,
        trailing_shape: Sequence[int] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.dtype = np.dtype(dtype)
        self.trailing_shape = tuple(int(d) for d in trailing_shape)
        self._header = {"dtype": self.dtype.str, "trailing_shape": list(self.trailing_shape), "meta": meta or {}}
        meta_path = self.root / META_FILE
        if meta_path.exists():
            existing = json.loads(meta_path.read_text())
            if json.loads(json.dumps(self._header)) != existing:
                raise AsrKdError(
                    f"{self.root}: store exists with a different configuration "
                    f"(existing {existing}, requested {self._header}); remove it or use another directory"
                )

    def shard_done(self, shard_id: int, source: str | None = None) -> bool:
        """Whether shard ``shard_id`` is complete and, given ``source``, was made from it.

        A complete shard without a recorded source (written without one, or by an asr_kd
        version that did not record sources) counts as done: see :meth:`unrecorded_source`.
        """
        if not (self.root / f"{shard_name(shard_id)}.index.tsv").exists():
            return False
        recorded = self.recorded_source(shard_id)
        return source is None or recorded is None or recorded == source

    def recorded_source(self, shard_id: int) -> str | None:
        """The ``source`` digest shard ``shard_id`` was written with, or None."""
        path = self.root / f"{shard_name(shard_id)}.source"
        return path.read_text().strip() if path.exists() else None

    def unrecorded_source(self, shard_id: int) -> bool:
        """A complete shard that records no source (cannot be checked against its inputs)."""
        return (self.root / f"{shard_name(shard_id)}.index.tsv").exists() and self.recorded_source(shard_id) is None

    def write_shard(self, shard_id: int, items: Iterable[tuple[str, np.ndarray]], source: str | None = None) -> None:
        """Write ``(utt_id, array)`` pairs as shard ``shard_id`` (replaces an existing one).

        ``source``: a digest of the shard's inputs, recorded for :meth:`shard_done`.

        Raises:
            AsrKdError: an array of the wrong row shape, or NaN/Inf in a floating-point array.
        """
        ids: list[str] = []
        arrays: list[np.ndarray] = []
        for utt_id, array in items:
            array = np.asarray(array)
            if array.shape[1:] != self.trailing_shape:
                raise AsrKdError(
                    f"{utt_id}: array of shape {array.shape} does not fit store {self.root} "
                    f"(rows of shape {self.trailing_shape})"
                )
            array = array.astype(self.dtype, copy=False)
            if not all_finite(array):
                raise AsrKdError(f"{self.root}: utterance {utt_id}: NaN/Inf in the values to store; not written")
            ids.append(utt_id)
            arrays.append(array)
        data = (
            np.concatenate(arrays, axis=0)
            if arrays
            else np.zeros((0, *self.trailing_shape), dtype=self.dtype)
        )
        if not (self.root / META_FILE).exists():
            write_json(self.root / META_FILE, self._header)
        name = shard_name(shard_id)
        # the index marks a complete shard: remove it first, so that a writer killed while
        # replacing a shard leaves it incomplete (redone), never old index + new data
        (self.root / f"{name}.index.tsv").unlink(missing_ok=True)
        write_with(self.root / f"{name}.npy", lambda tmp: np.save(tmp, data), suffix=".npy")
        source_path = self.root / f"{name}.source"
        if source is None:
            source_path.unlink(missing_ok=True)
        else:
            with atomic_open(source_path) as f:
                f.write(source + "\n")
        with atomic_open(self.root / f"{name}.index.tsv") as f:
            offset = 0
            for utt_id, array in zip(ids, arrays):
                f.write(f"{utt_id}\t{offset}\t{len(array)}\n")
                offset += len(array)


class ArrayStore:
    """Read-only view of a store: ``store[utt_id]`` returns a (memory-mapped) array.

    Example:
        >>> store = ArrayStore("exp/feats/train-clean-5")       # doctest: +SKIP
        >>> store["19-198-0001"].shape                            # doctest: +SKIP
        (1466, 40)
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        meta_path = self.root / META_FILE
        if not meta_path.exists():
            raise AsrKdError(f"{self.root}: not an array store (no {META_FILE}); run the stage that writes it")
        header = json.loads(meta_path.read_text())
        self.dtype = np.dtype(header["dtype"])
        self.trailing_shape = tuple(header["trailing_shape"])
        self.meta: dict[str, Any] = header["meta"]
        self._index: dict[str, ArrayLocation] = {}
        self._shards: dict[int, np.ndarray] = {}
        self._data_offsets: dict[int, int] = {}
        for index_path in sorted(self.root.glob("shard-*.index.tsv")):
            shard_id = int(index_path.name[len("shard-") : len("shard-") + 5])
            with open(index_path, encoding="utf-8") as f:
                for line in f:
                    utt_id, offset, num_rows = line.rstrip("\n").split("\t")
                    if utt_id in self._index:
                        raise AsrKdError(f"{index_path}: duplicate utterance id {utt_id} in store {self.root}")
                    self._index[utt_id] = ArrayLocation(shard_id, int(offset), int(num_rows))

    def _shard(self, shard_id: int) -> np.ndarray:
        if shard_id not in self._shards:
            path = self.root / f"{shard_name(shard_id)}.npy"
            try:
                shard = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise AsrKdError(f"{path}: unreadable shard of store {self.root} ({err})") from None
            if not all_finite(shard):
                bad = [u for u, loc in self._index.items() if loc.shard == shard_id
                       and not all_finite(shard[loc.offset : loc.offset + loc.num_rows])]
                raise AsrKdError(f"{path}: NaN/Inf in the stored values of utterance {bad[0] if bad else '?'}"
                                 f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''} (damaged file: "
                                 "recompute this store)")
            self._shards[shard_id] = shard
        return self._shards[shard_id]

    def _location(self, utt_id: str) -> ArrayLocation:
        try:
            return self._index[utt_id]
        except KeyError:
            raise AsrKdError(f"utterance {utt_id} is not in store {self.root}") from None

    def __getitem__(self, utt_id: str) -> np.ndarray:
        loc = self._location(utt_id)
        return self._shard(loc.shard)[loc.offset : loc.offset + loc.num_rows]

    def read(self, utt_id: str) -> np.ndarray:
        """A copy of ``store[utt_id]`` read from the shard file without a memory map."""
        loc = self._location(utt_id)
        path = self.root / f"{shard_name(loc.shard)}.npy"
        if loc.shard not in self._data_offsets:
            self._data_offsets[loc.shard] = _npy_data_offset(path, self.dtype)
        row_items = int(np.prod(self.trailing_shape, dtype=np.int64))
        offset = self._data_offsets[loc.shard] + loc.offset * row_items * self.dtype.itemsize
        data = np.fromfile(path, dtype=self.dtype, count=loc.num_rows * row_items, offset=offset)
        if len(data) != loc.num_rows * row_items:
            raise AsrKdError(f"{path}: truncated shard ({utt_id} needs rows {loc.offset}..{loc.offset + loc.num_rows})")
        if not all_finite(data):
            raise AsrKdError(f"{path}: NaN/Inf in the stored values of utterance {utt_id} (damaged file: "
                             "recompute this store)")
        return data.reshape(loc.num_rows, *self.trailing_shape)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def keys(self) -> list[str]:
        return list(self._index)

    def num_rows(self, utt_id: str) -> int:
        return self._index[utt_id].num_rows

    def total_rows(self) -> int:
        return sum(loc.num_rows for loc in self._index.values())

    def nbytes(self) -> int:
        """Bytes on disk of the shard arrays (not counting index and metadata)."""
        return sum(p.stat().st_size for p in self.root.glob("shard-*.npy"))


def _npy_data_offset(path: Path, dtype: np.dtype) -> int:
    """Byte offset of the array data in a C-ordered ``.npy`` file of ``dtype``."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            _, fortran_order, file_dtype = read_header(f)
            offset = f.tell()
    except (OSError, ValueError) as err:
        raise AsrKdError(f"{path}: unreadable shard ({err})") from None
    if fortran_order or file_dtype != dtype:
        raise AsrKdError(f"{path}: shard holds {file_dtype} (fortran order {fortran_order}), store says {dtype}")
    return offset


def all_finite(array: np.ndarray, block_rows: int = FINITE_CHECK_ROWS) -> bool:
    """No NaN/Inf in ``array`` (always true for integer dtypes); checked in blocks of rows."""
    if array.dtype.kind not in "fc":
        return True
    return all(np.isfinite(array[i : i + block_rows]).all() for i in range(0, len(array), block_rows))
