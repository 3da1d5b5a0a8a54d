"""Whole-FST conversion between ``kaldifst.StdVectorFst`` and numpy arc arrays.

Graph surgery that touches every arc (self-loop insertion, disambiguation removal, the numpy
oracle) is done on arrays instead of per-arc Python calls into the bindings. The bridge is
OpenFst's binary ``ConstFst`` format, whose states and arcs are two flat C arrays (written
unaligned, without symbol tables, by the bindings)::

    header   magic, "const", "standard", version, flags, properties, start, #states, #arcs
    states   per state: final weight f32, first arc u32, #arcs u32, #input eps u32, #output eps u32
    arcs     per arc:   ilabel i32, olabel i32, weight f32, nextstate i32

so a graph of tens of millions of arcs converts with a few bulk copies and no text.
"""

from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import kaldifst
import numpy as np

from asr_kd.utils.errors import AsrKdError

_MAGIC = 2125659606
_VERSION = 2
_EXPANDED = 0x1  # OpenFst property kExpanded; the rest is computed on demand after reading
_STATE = np.dtype([("final", "<f4"), ("pos", "<u4"), ("narcs", "<u4"), ("nieps", "<u4"), ("noeps", "<u4")])
_ARC = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("weight", "<f4"), ("nextstate", "<i4")])


@dataclass
class FstArrays:
    """An FST as arrays. States are ``0..num_states-1``; arcs are parallel arrays.

    Attributes:
        start: start state.
        num_states: number of states.
        src, dst: ``(A,)`` int32 source/destination state of each arc.
        ilabel, olabel: ``(A,)`` int32 labels (0 = epsilon).
        weight: ``(A,)`` float32 tropical weights (costs, negated log-probabilities).
        final: ``(num_states,)`` float32 final costs, ``inf`` for non-final states.
    """

    start: int
    num_states: int
    src: np.ndarray
    dst: np.ndarray
    ilabel: np.ndarray
    olabel: np.ndarray
    weight: np.ndarray
    final: np.ndarray

    @property
    def num_arcs(self) -> int:
        return len(self.src)


def _read_string(data: bytes, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<i", data, offset)
    return data[offset + 4 : offset + 4 + length].decode(), offset + 4 + length


def fst_to_arrays(fst: kaldifst.StdFst) -> FstArrays:
    """All arcs and final weights of ``fst`` (state numbering kept)."""
    with tempfile.TemporaryDirectory(prefix="asr_kd_fst_") as tmp:
        path = Path(tmp) / "g.fst"
        kaldifst.StdConstFst(fst).write(str(path))
        data = path.read_bytes()
    magic, offset = struct.unpack_from("<i", data, 0)[0], 4
    fst_type, offset = _read_string(data, offset)
    arc_type, offset = _read_string(data, offset)
    _, flags, _, start, num_states, num_arcs = struct.unpack_from("<iiQqqq", data, offset)
    offset += struct.calcsize("<iiQqqq")
    if magic != _MAGIC or fst_type != "const" or arc_type != "standard" or flags != 0:
        raise AsrKdError(f"unexpected FST binary layout ({fst_type}/{arc_type}, flags {flags}); kaldifst changed?")
    states = np.frombuffer(data, dtype=_STATE, count=num_states, offset=offset)
    arcs = np.frombuffer(data, dtype=_ARC, count=num_arcs, offset=offset + num_states * _STATE.itemsize)
    src = np.repeat(np.arange(num_states, dtype=np.int32), states["narcs"].astype(np.int64))
    return FstArrays(
        start=int(start),
        num_states=int(num_states),
        src=src,
        dst=arcs["nextstate"].copy(),
        ilabel=arcs["ilabel"].copy(),
        olabel=arcs["olabel"].copy(),
        weight=arcs["weight"].copy(),
        final=states["final"].copy(),
    )


def arrays_to_fst(arrays: FstArrays) -> kaldifst.StdVectorFst:
    """Build a ``StdVectorFst`` with the same states (same numbering), arcs and finals."""
    order = np.argsort(arrays.src, kind="stable")
    arcs = np.empty(arrays.num_arcs, dtype=_ARC)
    arcs["ilabel"] = arrays.ilabel[order]
    arcs["olabel"] = arrays.olabel[order]
    arcs["weight"] = arrays.weight[order]
    arcs["nextstate"] = arrays.dst[order]
    src = arrays.src[order]
    states = np.zeros(arrays.num_states, dtype=_STATE)
    states["final"] = arrays.final
    states["narcs"] = np.bincount(src, minlength=arrays.num_states)
    states["pos"] = np.cumsum(states["narcs"], dtype=np.int64) - states["narcs"]
    states["nieps"] = np.bincount(src[arcs["ilabel"] == 0], minlength=arrays.num_states)
    states["noeps"] = np.bincount(src[arcs["olabel"] == 0], minlength=arrays.num_states)
    header = b"".join([
        struct.pack("<i", _MAGIC),
        *(struct.pack("<i", len(s)) + s for s in (b"const", b"standard")),
        struct.pack("<iiQqqq", _VERSION, 0, _EXPANDED, arrays.start, arrays.num_states, arrays.num_arcs),
    ])
    with tempfile.TemporaryDirectory(prefix="asr_kd_fst_") as tmp:
        path = Path(tmp) / "g.fst"
        with open(path, "wb") as f:
            f.write(header)
            f.write(states.tobytes())
            f.write(arcs.tobytes())
        return kaldifst.StdVectorFst(kaldifst.StdConstFst.read(str(path)))
