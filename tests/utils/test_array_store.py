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
    ArrayStoreWriter(tmp_path, "float32", (40,)).write_shard(0, [("u0", np.zeros((2, 40)))])
    with pytest.raises(AsrKdError, match="different configuration"):
        ArrayStoreWriter(tmp_path, "float32", (80,))
    writer = ArrayStoreWriter(tmp_path, "float32", (40,))
    with pytest.raises(AsrKdError, match="u1"):
        writer.write_shard(0, [("u1", np.zeros((3, 80)))])
    with pytest.raises(AsrKdError, match="not in store"):
        ArrayStore(tmp_path)["nope"]
    with pytest.raises(AsrKdError, match="not an array store"):
        ArrayStore(tmp_path / "absent")


def test_non_finite_values_are_refused_on_write(tmp_path: Path) -> None:
    writer = ArrayStoreWriter(tmp_path, "float32", (2,))
    bad = np.ones((4, 2), dtype=np.float32)
    bad[2, 1] = np.inf
    with pytest.raises(AsrKdError, match="utterance u2: NaN/Inf"):
        writer.write_shard(0, [("u1", np.ones((3, 2))), ("u2", bad)])
    assert not writer.shard_done(0) and not (tmp_path / "meta.json").exists()
    ArrayStoreWriter(tmp_path, "int32", ()).write_shard(0, [("ids", np.arange(3))])  # integers need no check


def test_non_finite_values_in_a_stored_shard_name_utterance_and_file(tmp_path: Path) -> None:
    writer = ArrayStoreWriter(tmp_path, "float16", (3,))
    writer.write_shard(0, [("a", np.zeros((4, 3))), ("b", np.ones((5, 3))), ("c", np.ones((2, 3)))])
    shard = np.load(tmp_path / "shard-00000.npy")
    shard[6, 0] = np.nan  # a row of utterance b, written behind the store's back (a damaged file)
    np.save(tmp_path / "shard-00000.npy", shard)
    store = ArrayStore(tmp_path)
    with pytest.raises(AsrKdError, match=r"shard-00000.npy: NaN/Inf in the stored values of utterance b \("):
        store["a"]  # any read of the shard checks all of it once


def test_shard_source_decides_whether_a_shard_is_redone(tmp_path: Path) -> None:
    writer = ArrayStoreWriter(tmp_path, "int32", ())
    writer.write_shard(0, [("a", np.arange(3))], source="inputs-v1")
    assert writer.shard_done(0, "inputs-v1") and not writer.shard_done(0, "inputs-v2")
    assert writer.recorded_source(0) == "inputs-v1" and not writer.unrecorded_source(0)
    writer.write_shard(0, [("a", np.arange(5))], source="inputs-v2")
    assert writer.shard_done(0, "inputs-v2") and len(ArrayStore(tmp_path)["a"]) == 5
    writer.write_shard(1, [("b", np.arange(2))])  # no source recorded: done whatever the source
    assert writer.shard_done(1, "anything") and writer.unrecorded_source(1)
