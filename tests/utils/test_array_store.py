from pathlib import Path

import numpy as np
import pytest

from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter
from asr_kd.utils.errors import AsrKdError


def test_round_trip_and_memory_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {f"u{i}": rng.normal(size=(5 + i, 3)).astype(np.float32) for i in range(5)}
    writer = ArrayStoreWriter(tmp_path, "float32", (3,), {"kind": "test"})
    writer.write_shard(0, list(arrays.items())[:3])
    writer.write_shard(1, list(arrays.items())[3:])
    store = ArrayStore(tmp_path)
    assert sorted(store) == sorted(arrays) and store.meta == {"kind": "test"}
    for key, value in arrays.items():
        np.testing.assert_array_equal(store[key], value)
    assert isinstance(store["u4"].base, np.memmap) or isinstance(store["u4"], np.memmap)
    assert store.total_rows() == sum(len(v) for v in arrays.values())


def test_incomplete_shard_is_invisible_and_redone(tmp_path: Path) -> None:
    writer = ArrayStoreWriter(tmp_path, "int32", ())
    writer.write_shard(0, [("a", np.arange(4))])
    (tmp_path / "shard-00001.npy").write_bytes(b"garbage from a killed run")
    assert not writer.shard_done(1) and writer.shard_done(0)
    assert sorted(ArrayStore(tmp_path)) == ["a"]
    writer.write_shard(1, [("b", np.arange(2))])
    np.testing.assert_array_equal(ArrayStore(tmp_path)["b"], [0, 1])
    assert not list(tmp_path.glob(".*tmp*"))


def test_config_mismatch_and_shape_errors(tmp_path: Path) -> None:
    ArrayStoreWriter(tmp_path, "float32", (40,))
    with pytest.raises(AsrKdError, match="different configuration"):
        ArrayStoreWriter(tmp_path, "float32", (80,))
    writer = ArrayStoreWriter(tmp_path, "float32", (40,))
    with pytest.raises(AsrKdError, match="u1"):
        writer.write_shard(0, [("u1", np.zeros((3, 80)))])
    with pytest.raises(AsrKdError, match="not in store"):
        ArrayStore(tmp_path)["nope"]
    with pytest.raises(AsrKdError, match="not an array store"):
        ArrayStore(tmp_path / "absent")
