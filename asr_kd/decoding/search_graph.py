"""HCLG as flat arrays for the lattice search: per-state arc ranges, emitting arcs apart from epsilons.

The search (:mod:`asr_kd.decoding.lattice_search`) walks the graph state by state, first the
arcs that consume a frame (``ilabel > 0``), then, within the frame, the epsilon arcs, as Kaldi's
decoders do (``NumInputEpsilons`` tells them which states to queue). A :class:`SearchGraph` holds:

* ``offsets`` ``(2 * num_states + 1,)`` int64: the arcs of state ``s`` are
  ``arcs[offsets[2s] : offsets[2s+1]]`` (emitting) and ``arcs[offsets[2s+1] : offsets[2s+2]]``
  (epsilon input); interleaved so that one cache line holds both ranges;
* ``arcs`` ``(A,)`` records ``(ilabel i4, olabel i4, weight f4, nextstate i4)``, OpenFst's own
  16-byte arc layout (one cache line holds four arcs: the search reads all four fields);
* ``final`` ``(num_states,)`` float32 final costs (``inf``: not final); ``start``.

It is made from the OpenFst binary file (``vector`` or ``const``) without the kaldifst bindings:
a ``VectorFst`` file is a sequence of variable-length state records (final weight, arc count,
arcs), scanned by a compiled loop, so the 4.6M-state / 11.6M-arc HCLG of a 72k-word trigram
converts in seconds instead of an arc-by-arc Python walk. The arrays are cached as ``.npy`` files
in ``<graph dir>/search_graph/`` with the graph's cache key (``graph.json``) and the size and
modification time of ``HCLG.fst``; a different graph rebuilds them. They are opened memory-mapped,
so decoding processes on one machine share one copy in the page cache.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from asr_kd.decoding.fst_arrays import FstArrays
from asr_kd.utils.atomic import write_json, write_with
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("decoding.search_graph")
#: Bump when the cached layout changes.
FORMAT_VERSION = 1
CACHE_DIR = "search_graph"
META_FILE = "meta.json"
ARC = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("weight", "<f4"), ("nextstate", "<i4")])
_MAGIC = 2125659606
_CONST_STATE = np.dtype([("final", "<f4"), ("pos", "<u4"), ("narcs", "<u4"), ("nieps", "<u4"), ("noeps", "<u4")])
_HAS_SYMBOLS = 0x3  # OpenFst header flags kHasIsymbols | kHasOsymbols
_VECTOR_STATE_HEADER = 12  # final weight f32 + arc count i64
_ARRAYS = ("offsets", "arcs", "final")


@dataclass(frozen=True)
class SearchGraph:
    """The decoding graph as arrays (see the module docstring)."""

    start: int
    offsets: np.ndarray
    arcs: np.ndarray
    final: np.ndarray

    def __post_init__(self) -> None:
        # read-only like the memory-mapped cache, so that numba compiles (and caches) one version
        for values in (self.offsets, self.arcs, self.final):
            values.flags.writeable = False

    @property
    def num_states(self) -> int:
        return len(self.final)

    @property
    def num_arcs(self) -> int:
        return len(self.arcs)


@numba.njit(cache=True)
def _partition_arcs(counts: np.ndarray, arcs_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per state (arcs in state order, ``counts`` per state): emitting arcs first, then epsilons, order kept."""
    num_states = len(counts)
    offsets = np.empty(2 * num_states + 1, dtype=np.int64)
    arcs = np.empty_like(arcs_in)
    pos = 0
    for s in range(num_states):
        first, n = pos, counts[s]
        out = first
        offsets[2 * s] = first
        for k in range(first, first + n):
            if arcs_in[k]["ilabel"] != 0:
                arcs[out] = arcs_in[k]
                out += 1
        offsets[2 * s + 1] = out
        for k in range(first, first + n):
            if arcs_in[k]["ilabel"] == 0:
                arcs[out] = arcs_in[k]
                out += 1
        pos = first + n
    offsets[2 * num_states] = pos
    return offsets, arcs


@numba.njit(cache=True)
def _scan_vector_states(data: np.ndarray, offset: int, num_states: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte offset of every state record of a ``VectorFst`` body and its arc count ``(num_states,)`` each."""
    record = np.empty(num_states, dtype=np.int64)
    counts = np.empty(num_states, dtype=np.int64)
    pos = offset
    for s in range(num_states):
        if pos + _VECTOR_STATE_HEADER > len(data):
            return record[:s], counts[:s]
        record[s] = pos
        n = 0
        for b in range(8):  # little-endian int64 after the 4-byte final weight
            n |= np.int64(data[pos + 4 + b]) << (8 * b)
        counts[s] = n
        pos += _VECTOR_STATE_HEADER + 16 * n
    return record, counts


@numba.njit(cache=True)
def _gather_vector_arcs(data: np.ndarray, record: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Final-weight bytes ``(S, 4)`` and arc bytes ``(A * 16,)`` of the state records found by the scan."""
    finals = np.empty((len(record), 4), dtype=np.uint8)
    arcs = np.empty(16 * counts.sum(), dtype=np.uint8)
    out = 0
    for s in range(len(record)):
        for b in range(4):
            finals[s, b] = data[record[s] + b]
        n = 16 * counts[s]
        first = record[s] + _VECTOR_STATE_HEADER
        arcs[out : out + n] = data[first : first + n]
        out += n
    return finals, arcs


def _read_string(data: np.ndarray, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<i", data, offset)
    return bytes(data[offset + 4 : offset + 4 + length]).decode(errors="replace"), offset + 4 + length


def read_fst_file(path: str | os.PathLike) -> SearchGraph:
    """A :class:`SearchGraph` from an OpenFst binary file (``vector`` or ``const`` standard FST).

    Raises:
        AsrKdError: not an FST file, another arc type, a truncated file.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    header = "<iiQqqq"
    try:
        magic = struct.unpack_from("<i", data, 0)[0]
        fst_type, offset = _read_string(data, 4)
        arc_type, offset = _read_string(data, offset)
        _, flags, _, start, num_states, num_arcs = struct.unpack_from(header, data, offset)
    except struct.error:
        raise AsrKdError(f"{path}: not an OpenFst file (too short)") from None
    offset += struct.calcsize(header)
    if magic != _MAGIC or arc_type != "standard" or fst_type not in ("vector", "const"):
        raise AsrKdError(f"{path}: not a standard-arc vector/const OpenFst file ({fst_type!r}, {arc_type!r})")
    if flags & _HAS_SYMBOLS:
        raise AsrKdError(f"{path}: FST files with embedded symbol tables are not supported")
    if fst_type == "const":
        end = offset + num_states * _CONST_STATE.itemsize + num_arcs * ARC.itemsize
        if len(data) < end:
            raise AsrKdError(f"{path}: truncated ConstFst file")
        states = data[offset : offset + num_states * _CONST_STATE.itemsize].view(_CONST_STATE)
        arcs = data[offset + num_states * _CONST_STATE.itemsize : end].view(ARC)
        counts, final = states["narcs"].astype(np.int64), states["final"].copy()
    else:
        record, counts = _scan_vector_states(data, offset, num_states)
        if len(record) < num_states or record[-1] + _VECTOR_STATE_HEADER + 16 * counts[-1] > len(data):
            raise AsrKdError(f"{path}: truncated VectorFst file ({len(record)} of {num_states} states)")
        final_bytes, arc_bytes = _gather_vector_arcs(data, record, counts)
        final, arcs = final_bytes.view("<f4").reshape(-1).copy(), arc_bytes.view(ARC)
    offsets, arcs = _partition_arcs(counts, arcs)
    return SearchGraph(int(start), offsets, arcs, final.astype(np.float32))


def from_fst_arrays(fst: FstArrays) -> SearchGraph:
    """A :class:`SearchGraph` from :class:`FstArrays` (graphs built in memory, e.g. by :func:`compile_hclg`)."""
    order = np.argsort(fst.src, kind="stable")
    arcs = np.empty(fst.num_arcs, dtype=ARC)
    for field, values in (("ilabel", fst.ilabel), ("olabel", fst.olabel), ("weight", fst.weight),
                          ("nextstate", fst.dst)):
        arcs[field] = values[order]
    counts = np.bincount(fst.src, minlength=fst.num_states).astype(np.int64)
    offsets, arcs = _partition_arcs(counts, arcs)
    return SearchGraph(fst.start, offsets, arcs, fst.final.astype(np.float32))


def _file_stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _open_cache(cache: Path, start: int) -> SearchGraph:
    arrays = {name: np.load(cache / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    return SearchGraph(start, **arrays)


def load_search_graph(graph_dir: str | os.PathLike, key: Any, hclg_file: str = "HCLG.fst") -> SearchGraph:
    """The :class:`SearchGraph` of ``<graph_dir>/<hclg_file>``, memory-mapped from its cache (made if needed).

    Args:
        key: the graph's cache key (``graph.json``); a cache made for another key, another
            ``HCLG.fst`` (size, modification time) or another :data:`FORMAT_VERSION` is rebuilt.

    Concurrent callers (several ``asr-kd decode`` runs on one graph) take turns through a lock
    file, so one builds the cache and the others open it. A graph directory that cannot be
    written to and has no valid cache gets the arrays in memory (logged).
    """
    graph_dir = Path(graph_dir)
    hclg = graph_dir / hclg_file
    if not hclg.exists():
        raise AsrKdError(f"{hclg}: no such decoding graph file")
    cache = graph_dir / CACHE_DIR
    meta = {"format": FORMAT_VERSION, "graph_key": key, "hclg": _file_stamp(hclg)}
    cached = _valid_cache(cache, meta)
    if cached is not None:
        return cached
    if not os.access(graph_dir, os.W_OK):
        log.warning("search graph: %s is not writable; converting %s in memory", graph_dir, hclg)
        return read_fst_file(hclg)
    with open(graph_dir / f".{CACHE_DIR}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _valid_cache(cache, meta)  # another process may have made it meanwhile
        if cached is not None:
            return cached
        log.info("search graph: converting %s into %s", hclg, cache)
        graph = read_fst_file(hclg)
        if cache.exists():
            shutil.rmtree(cache)  # meta.json is written last: a partial or stale cache goes as a whole
        for name in _ARRAYS:
            write_with(cache / f"{name}.npy", lambda tmp, a=getattr(graph, name): np.save(tmp, a), suffix=".npy")
        write_json(cache / META_FILE, {**meta, "start": graph.start, "num_states": graph.num_states,
                                       "num_arcs": graph.num_arcs})
        return _valid_cache(cache, meta)


def _valid_cache(cache: Path, meta: dict[str, Any]) -> SearchGraph | None:
    """The cached graph, memory-mapped, if ``cache`` holds one made with ``meta``."""
    meta_path = cache / META_FILE
    if not meta_path.exists():
        return None
    stored = json.loads(meta_path.read_text())
    if {k: stored.get(k) for k in meta} != meta:
        return None
    return _open_cache(cache, int(stored["start"]))
