"""FrameStream: the chunked, rank-partitioned data path against the in-memory FrameTable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asr_kd.features.cmvn import Cmvn
from asr_kd.features.dataset import FeatureSet, FrameTable
from asr_kd.features.extract import CMVN_FILE, UTT2SPK
from asr_kd.features.frame_stream import (
    FrameCorpus,
    FrameStream,
    StreamedArrays,
    chunk_seed,
    partition,
    read_frames,
)
from asr_kd.training.batches import FrameBatcher, UtteranceBatcher
from asr_kd.training.stream_batches import StreamFrameBatcher, StreamUtteranceBatcher
from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter
from asr_kd.utils.errors import AsrKdError

DIM, SENONES, K = 6, 50, 3
CPU = torch.device("cpu")


def write_corpus(root: Path, num_utts: int = 23, seed: int = 0) -> dict[str, Path]:
    """Features (3 shards), int32 targets and a top-k-like extra store of ``num_utts`` utterances.

    The extra store's row ``t`` of utterance ``u`` holds ``(utterance number, t, 0)``, so a
    batch can be checked frame by frame against its frame index.
    """
    rng = np.random.default_rng(seed)
    ids = sorted(f"{100 + i % 4}-7-{i:04d}" for i in range(num_utts))  # corpus order
    lengths = {u: int(rng.integers(5, 40)) for u in ids}
    feats = {u: (rng.normal(size=(n, DIM)) * 3 + 2).astype(np.float32) for u, n in lengths.items()}
    paths = {name: root / name for name in ("feats", "targets", "extra")}
    writers = {"feats": ArrayStoreWriter(paths["feats"], "float32", (DIM,)),
               "targets": ArrayStoreWriter(paths["targets"], "int32"),
               "extra": ArrayStoreWriter(paths["extra"], "int16", (K,))}
    for shard, part in enumerate(np.array_split(np.arange(num_utts), 3)):
        batch = [ids[i] for i in part]
        writers["feats"].write_shard(shard, [(u, feats[u]) for u in batch])
        writers["targets"].write_shard(shard, [(u, rng.integers(0, SENONES, lengths[u])) for u in batch])
        extra = [(u, np.stack([np.full(lengths[u], ids.index(u)), np.arange(lengths[u]), np.zeros(lengths[u])], 1))
                 for u in batch]
        writers["extra"].write_shard(shard, extra)
    utt2spk = {u: u.split("-")[0] for u in ids}
    (paths["feats"] / UTT2SPK).write_text("".join(f"{u}\t{s}\n" for u, s in utt2spk.items()))
    Cmvn.from_store(ArrayStore(paths["feats"]), utt2spk).save(paths["feats"] / CMVN_FILE)
    return paths


@pytest.fixture
def corpus_dir(tmp_path: Path) -> dict[str, Path]:
    return write_corpus(tmp_path)


def make_corpus(paths: dict[str, Path], extra: bool = False) -> FrameCorpus:
    features = FeatureSet(paths["feats"])
    corpus = FrameCorpus(features, features.utt_ids(), ArrayStore(paths["targets"]), targets_dtype="int16")
    if extra:
        corpus.attach("extra", StreamedArrays({"rows": ArrayStore(paths["extra"])}))
    return corpus


def table_of(paths: dict[str, Path]) -> FrameTable:
    features = FeatureSet(paths["feats"])
    return FrameTable(features, features.utt_ids(), ArrayStore(paths["targets"]))


def epoch(batcher, seed: int, shuffle: bool = True) -> list[dict]:
    return [batcher.build(spec, CPU) for spec in batcher.plan(seed, shuffle)]


def test_array_store_read_copies_without_a_memory_map(corpus_dir):
    store = ArrayStore(corpus_dir["feats"])
    for u in store:
        row = store.read(u)
        assert row.flags.writeable and np.array_equal(row, np.asarray(store[u]))
    fresh = ArrayStore(corpus_dir["extra"])
    assert fresh.read(fresh.keys()[-1]).shape[1:] == (K,) and not fresh._shards  # no map opened


def test_array_store_read_names_an_utterance_with_nan(corpus_dir):
    store = ArrayStore(corpus_dir["feats"])
    victim = store.keys()[1]
    shard = np.load(corpus_dir["feats"] / "shard-00000.npy", mmap_mode="r+")
    shard[store._index[victim].offset + 2, 3] = np.nan  # a damaged file: the writer refuses NaN
    shard.flush()
    del shard
    with pytest.raises(AsrKdError, match=f"NaN/Inf in the stored values of utterance {victim}"):
        ArrayStore(corpus_dir["feats"]).read(victim)
    assert ArrayStore(corpus_dir["feats"]).read(store.keys()[0]).shape[1] == DIM


def test_threaded_reads_equal_one_thread(corpus_dir):
    corpus = make_corpus(corpus_dir, extra=True)
    utts = np.arange(len(corpus.utt_ids))[::-1]
    one, three = read_frames(corpus, utts, "float16", 1), read_frames(corpus, utts, "float16", 3)
    assert np.array_equal(one.feats, three.feats) and np.array_equal(one.targets, three.targets)
    assert np.array_equal(one.extras["extra"]["rows"], three.extras["extra"]["rows"])
    assert one.feats.dtype == np.float16 and len(one.feats) == corpus.lengths.sum()


def test_loading_in_pieces_gives_the_same_chunk(corpus_dir):
    """The GPU's bounded-host-memory load, run on the CPU: pieces of 50 frames (some one utterance)."""
    from asr_kd.features.frame_stream import FrameChunk

    corpus = make_corpus(corpus_dir, extra=True)
    utts = np.arange(len(corpus.utt_ids))
    whole = FrameChunk.load(corpus, utts, CPU, "float16")
    pieces = FrameChunk.load_in_pieces(corpus, utts, CPU, "float16", piece_frames=50, threads=2)
    for name in ("feats", "targets", "starts", "utt_of_frame", "global_starts"):
        assert torch.equal(getattr(whole, name), getattr(pieces, name)), name
    assert torch.equal(whole.extras["extra"]["rows"], pieces.extras["extra"]["rows"])


def test_partition_is_contiguous_disjoint_balanced_and_never_empty():
    rng = np.random.default_rng(1)
    lengths = rng.integers(100, 3500, size=101)
    for world in (1, 2, 3, 8, 101):
        parts = partition(lengths, world)
        assert np.array_equal(np.concatenate(parts), np.arange(101)) and all(len(p) for p in parts)
        frames = [int(lengths[p].sum()) for p in parts]
        if world < 10:
            assert max(frames) - min(frames) <= 2 * lengths.max()


def test_resident_float32_stream_gives_the_in_memory_batches(corpus_dir):
    """One process, one resident chunk, float32: exactly FrameTable's batches for the same seed."""
    table = table_of(corpus_dir)
    stream = FrameStream(make_corpus(corpus_dir), chunk_frames=0, dtype="float32")
    memory, streamed = FrameBatcher(table, (3, 2), 16), StreamFrameBatcher(stream, (3, 2), 16)
    for seed in (0, 5):
        ref, got = epoch(memory, seed), epoch(streamed, seed)
        assert len(ref) == len(got)
        for a, b in zip(ref, got):
            assert torch.equal(a["frame_index"], b["frame_index"])
            assert torch.equal(a["inputs"], b["inputs"]) and torch.equal(a["targets"], b["targets"])


def test_chunks_cover_every_frame_once_per_epoch_in_a_seeded_order(corpus_dir):
    table = table_of(corpus_dir)
    stream = FrameStream(make_corpus(corpus_dir), chunk_frames=120, dtype="float16", prefetch=True)
    batcher = StreamFrameBatcher(stream, (4, 1), 16)
    sizes = stream.chunk_sizes(3, 0)
    assert len(sizes) > 3 and sum(sizes) == len(table)
    first = epoch(batcher, 3)
    frames = torch.cat([b["frame_index"] for b in first])
    assert torch.equal(frames.sort().values, torch.arange(len(table)))  # the same multiset as the table's epoch
    for b in first:  # features (fp16-rounded), windows and targets of exactly those frames
        reference = table.context_windows(b["frame_index"], 4, 1)
        assert torch.allclose(b["inputs"], reference, atol=2e-3 * float(reference.abs().max()))
        assert torch.equal(b["targets"], table.targets[b["frame_index"]])
    again = epoch(StreamFrameBatcher(FrameStream(make_corpus(corpus_dir), chunk_frames=120), (4, 1), 16), 3)
    assert all(torch.equal(a["inputs"], b["inputs"]) for a, b in zip(first, again))  # deterministic
    other = torch.cat([b["frame_index"] for b in epoch(batcher, 4)])
    assert not torch.equal(other, frames)


def test_a_resumed_stream_rebuilds_any_batch_mid_epoch(corpus_dir):
    """What exact resume relies on: batch k of a plan from a fresh process equals the original's."""
    def make():
        return StreamFrameBatcher(FrameStream(make_corpus(corpus_dir), chunk_frames=100), (2, 2), 8)

    original = make()
    plan = original.plan(11)
    built = [original.build(spec, CPU) for spec in plan]
    resumed = make()
    assert resumed.plan(11) == plan
    for k in (len(plan) // 2, len(plan) // 2 + 1, len(plan) - 1):
        batch = resumed.build(plan[k], CPU)
        assert torch.equal(batch["inputs"], built[k]["inputs"]) and torch.equal(batch["targets"], built[k]["targets"])


@pytest.mark.parametrize("chunk_frames", [0, 90])
def test_ranks_read_disjoint_parts_and_take_equal_steps(corpus_dir, chunk_frames):
    world, seen = 3, []
    plans = []
    for rank in range(world):
        stream = FrameStream(make_corpus(corpus_dir), rank, world, chunk_frames=chunk_frames)
        batcher = StreamFrameBatcher(stream, (1, 1), 8)
        plan = batcher.plan(2)
        plans.append(plan)
        mine = [batcher.build(spec, CPU) for spec in plan[rank::world]]
        part = stream.parts[rank]
        lo, hi = stream.corpus.offsets[part[0]], stream.corpus.offsets[part[-1] + 1]
        frames = torch.cat([b["frame_index"] for b in mine])
        assert bool(((frames >= lo) & (frames < hi)).all())  # only its own part
        seen.append(frames)
        with pytest.raises(AsrKdError, match="built by rank"):
            batcher.build(plan[(rank + 1) % world], CPU)
    assert plans[0] == plans[1] == plans[2] and len(plans[0]) % world == 0  # one plan, same steps per rank
    frames = torch.cat(seen)
    assert len(frames.unique()) == len(frames)  # disjoint
    total = make_corpus(corpus_dir).offsets[-1]
    # what the shortest rank's step count cuts off is less than a few batches per rank
    assert total - 3 * world * 8 <= len(frames) <= total


def test_parts_cover_every_frame_once_when_every_rank_takes_all_its_batches(corpus_dir):
    stream = FrameStream(make_corpus(corpus_dir), 0, 4, chunk_frames=50)
    covered = np.concatenate([np.concatenate([np.arange(stream.corpus.offsets[u], stream.corpus.offsets[u + 1])
                                              for c in stream.chunks(9, r) for u in c]) for r in range(4)])
    assert np.array_equal(np.sort(covered), np.arange(len(stream)))


def test_attached_arrays_arrive_aligned_with_their_frames(corpus_dir):
    corpus = make_corpus(corpus_dir, extra=True)
    batcher = StreamFrameBatcher(FrameStream(corpus, chunk_frames=70), (1, 0), 16)
    for batch in epoch(batcher, 1):
        rows = batch["extra"]["rows"].long()
        u, t = rows[:, 0], rows[:, 1]
        assert torch.equal(torch.from_numpy(corpus.offsets)[u] + t, batch["frame_index"])


def test_attach_checks_rows_and_comes_before_reading(corpus_dir, tmp_path):
    corpus = make_corpus(corpus_dir)
    short = ArrayStoreWriter(tmp_path / "short", "int16", (K,))
    ids = corpus.utt_ids
    short.write_shard(0, [(u, np.zeros((n - (u == ids[4]), K))) for u, n in zip(ids, corpus.lengths)])
    with pytest.raises(AsrKdError, match=f"{ids[4]}: .* feature frames but .* rows of bad/x"):
        corpus.attach("bad", StreamedArrays({"x": ArrayStore(tmp_path / "short")}))
    corpus.read(0)
    with pytest.raises(AsrKdError, match="attached after frames were read"):
        corpus.attach("extra", StreamedArrays({"rows": ArrayStore(corpus_dir["extra"])}))


def test_decode_turns_arrays_into_the_batch_value(corpus_dir):
    corpus = make_corpus(corpus_dir)
    corpus.attach("extra", StreamedArrays({"rows": ArrayStore(corpus_dir["extra"])}, decode=lambda a: a["rows"][:, 1]))
    batch = epoch(StreamFrameBatcher(FrameStream(corpus, chunk_frames=0), (0, 0), 32), 0)[0]
    assert batch["extra"].shape == batch["targets"].shape


def test_bytes_per_frame_accounts_for_what_a_chunk_holds(corpus_dir):
    corpus = make_corpus(corpus_dir, extra=True)
    stream = FrameStream(corpus, chunk_frames=0)
    # fp16 features + int16 target + int16 x K extra + int32 utterance index + int64 permutation
    assert stream.bytes_per_frame() == DIM * 2 + 2 + 2 * K + 4 + 8
    chunk, order = stream.chunk(0, 0)
    assert chunk.nbytes() + order.numel() * order.element_size() == stream.bytes_per_frame() * len(chunk)
    table = table_of(corpus_dir)
    tensors = (table.feats, table.targets, table.utt_start, table.utt_end)
    table_bytes = sum(t.numel() * t.element_size() for t in tensors)
    assert table_bytes == (DIM * 4 + 3 * 8) * len(table)


def test_targets_that_do_not_fit_the_narrow_dtype_are_refused(corpus_dir, tmp_path):
    features = FeatureSet(corpus_dir["feats"])
    big = ArrayStoreWriter(tmp_path / "big", "int32")
    big.write_shard(0, [(u, np.full(features.store.num_rows(u), 40000)) for u in features.utt_ids()])
    corpus = FrameCorpus(features, features.utt_ids(), ArrayStore(tmp_path / "big"), targets_dtype="int16")
    with pytest.raises(AsrKdError, match="does not fit int16"):
        FrameStream(corpus).max_target()


def test_online_teacher_lookup_by_global_frame_index(corpus_dir):
    table = table_of(corpus_dir)
    stream = FrameStream(make_corpus(corpus_dir), chunk_frames=80, dtype="float32")
    batcher = StreamFrameBatcher(stream, (2, 1), 16)
    plan = batcher.plan(0)
    batch = batcher.build(plan[0], CPU)
    assert torch.equal(stream.context_windows(batch["frame_index"], 5, 3),
                       table.context_windows(batch["frame_index"], 5, 3))
    later = batcher.build(plan[-1], CPU)  # another chunk is current now
    if not set(batch["frame_index"].tolist()) & set(later["frame_index"].tolist()):
        with pytest.raises(AsrKdError, match="not in the current chunk"):
            stream.context_windows(batch["frame_index"], 5, 3)


def test_utterance_stream_gives_the_in_memory_utterance_batches(corpus_dir):
    table = table_of(corpus_dir)
    stream = FrameStream(make_corpus(corpus_dir, extra=True))
    ref, got = epoch(UtteranceBatcher(table, 100), 4), epoch(StreamUtteranceBatcher(stream, 100), 4)
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        assert torch.equal(a["inputs"][0], b["inputs"][0]) and torch.equal(a["inputs"][1], b["inputs"][1])
        assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["frame_index"], b["frame_index"])
        assert torch.equal(a["targets"], b["targets"])
        assert len(b["extra"]["rows"]) == len(b["frame_index"])


def test_chunk_seed_of_rank_0_chunk_0_is_the_epoch_seed():
    assert chunk_seed(123, 0, 0) == 123
    assert len({chunk_seed(123, r, c) for r in range(3) for c in range(3)}) == 9
