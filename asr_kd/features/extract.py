"""Compute features for a manifest into an :class:`~asr_kd.utils.array_store.ArrayStore`.

Feature directory layout (``<exp>/feats/<subset>``)::

    meta.json, shard-*.npy, shard-*.index.tsv   raw log-mel fbank, (T, D) float32 per utterance
    utt2spk.tsv                                  utterance -> speaker (for per-speaker CMVN)
    cmvn.npz                                     per-speaker CMVN statistics (written last)

Shards are independent jobs spread over a process pool; a rerun skips finished shards, so a
killed extraction resumes where it stopped. Each shard records a digest of what it was made
from (:func:`shard_source`: audio path, size and mtime of every file, the fbank settings), so
a shard whose audio changed since it was written is redone instead of reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from asr_kd.data.manifest import Utterance
from asr_kd.features.cmvn import Cmvn
from asr_kd.features.fbank import FbankConfig
from asr_kd.utils.array_store import ArrayStore, ArrayStoreWriter
from asr_kd.utils.atomic import atomic_open
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger
from asr_kd.utils.processes import worker_pool

log = get_logger("features")

UTT2SPK = "utt2spk.tsv"
CMVN_FILE = "cmvn.npz"


@dataclass(frozen=True)
class ExtractionSummary:
    utterances: int
    frames: int
    audio_seconds: float
    wall_seconds: float
    cpu_seconds: float  # summed over worker processes (for x-real-time per core)
    shards_written: int
    shards_skipped: int
    shards_redone: int = 0  # of the written ones: complete before, but their audio or settings changed

    @property
    def realtime_factor_per_core(self) -> float:
        """Seconds of audio processed per CPU-second of the workers (x real time per core)."""
        return self.audio_seconds / max(self.cpu_seconds, 1e-9)


def shard_source(utts: list[Utterance], config: FbankConfig) -> str:
    """Digest of what a feature shard is made from: the fbank settings and, per utterance, its
    id, audio path, manifest length and the file's size and mtime (a changed file is redone).

    Size + mtime (as rsync and make use them) rather than a content hash: a stat per file
    instead of reading all the audio on every rerun.
    """
    rows = []
    for utt in utts:
        try:
            stat = os.stat(utt.audio_path)
        except FileNotFoundError:
            raise AsrKdError(f"{utt.audio_path}: audio file is missing (utterance {utt.utt_id})") from None
        rows.append([utt.utt_id, utt.audio_path, utt.num_samples, stat.st_size, stat.st_mtime_ns])
    text = json.dumps({"fbank": config.to_dict(), "utterances": rows}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _extract_shard(
    out_dir: str, dtype: str, meta: dict, config: FbankConfig, shard_id: int, utts: list[Utterance], source: str
) -> tuple[int, float]:
    """Worker: compute and atomically write one shard; returns (frames, cpu seconds)."""
    import torch

    from asr_kd.features.fbank import fbank_of_file

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one process per core: intra-op threads would only contend
    start = time.process_time()
    writer = ArrayStoreWriter(out_dir, dtype, (config.num_mel_bins,), meta)
    items = [(utt.utt_id, fbank_of_file(utt.audio_path, config, expected_samples=utt.num_samples)) for utt in utts]
    writer.write_shard(shard_id, items, source=source)
    torch.set_num_threads(threads)  # the serial path runs in the caller's process
    return sum(len(f) for _, f in items), time.process_time() - start


def extract_features(
    utterances: list[Utterance],
    out_dir: str | os.PathLike,
    config: FbankConfig = FbankConfig(),
    num_workers: int | None = None,
    utts_per_shard: int = 100,
    progress: bool = True,
) -> ExtractionSummary:
    """Extract log-mel features of ``utterances`` into ``out_dir`` (resumable, parallel).

    Args:
        utterances: from a manifest; sharding follows this order, so keep it fixed across reruns.
        num_workers: processes (default: all cores).
        utts_per_shard: utterances per shard (one job and one ``.npy`` file each).
    """
    out_dir = Path(out_dir)
    if len({u.utt_id for u in utterances}) != len(utterances):
        raise AsrKdError(f"{out_dir}: duplicate utterance ids in the manifest")
    meta = {"kind": "fbank", "fbank": config.to_dict(), "utts_per_shard": utts_per_shard,
            "num_utterances": len(utterances)}
    writer = ArrayStoreWriter(out_dir, "float32", (config.num_mel_bins,), meta)
    shards = [utterances[i : i + utts_per_shard] for i in range(0, len(utterances), utts_per_shard)]
    sources = [shard_source(shard, config) for shard in shards]
    todo = [i for i in range(len(shards)) if not writer.shard_done(i, sources[i])]
    redone = sum(writer.recorded_source(i) is not None and writer.shard_done(i) for i in todo)
    unchecked = sum(writer.unrecorded_source(i) for i in range(len(shards)))
    if unchecked:
        log.warning("%s: %d shards were written before asr_kd recorded what features are made from: kept without "
                    "checking that their audio is unchanged (delete the directory to recompute them)", out_dir,
                    unchecked)
    num_workers = min(num_workers or os.cpu_count() or 1, max(len(todo), 1))
    start = time.perf_counter()
    frames, cpu = 0, 0.0
    with tqdm(total=len(todo), desc=f"fbank {out_dir.name}", unit="shard", disable=not progress) as bar:
        if num_workers <= 1:
            for i in todo:
                f, c = _extract_shard(str(out_dir), "float32", meta, config, i, shards[i], sources[i])
                frames, cpu = frames + f, cpu + c
                bar.update()
        else:
            with worker_pool(num_workers) as pool:
                jobs = [pool.submit(_extract_shard, str(out_dir), "float32", meta, config, i, shards[i], sources[i])
                        for i in todo]
                try:
                    for job in as_completed(jobs):
                        f, c = job.result()
                        frames, cpu = frames + f, cpu + c
                        bar.update()
                except BaseException:  # a bad file (or Ctrl-C): do not wait for the queued shards
                    for job in jobs:
                        job.cancel()
                    raise
    wall = time.perf_counter() - start
    with atomic_open(out_dir / UTT2SPK) as f:
        for utt in utterances:
            f.write(f"{utt.utt_id}\t{utt.speaker}\n")
    store = ArrayStore(out_dir)
    utt2spk = read_utt2spk(out_dir)
    Cmvn.from_store(store, utt2spk).save(out_dir / CMVN_FILE)
    processed = {u.utt_id for i in todo for u in shards[i]}
    return ExtractionSummary(
        utterances=len(store),
        frames=store.total_rows(),
        audio_seconds=sum(u.duration_s for u in utterances if u.utt_id in processed),
        wall_seconds=wall,
        cpu_seconds=cpu,
        shards_written=len(todo),
        shards_skipped=len(shards) - len(todo),
        shards_redone=redone,
    )


def read_utt2spk(feature_dir: str | os.PathLike) -> dict[str, str]:
    """Utterance -> speaker map of a feature directory."""
    path = Path(feature_dir) / UTT2SPK
    if not path.exists():
        raise AsrKdError(f"{path}: missing (feature extraction did not finish; rerun `asr-kd features`)")
    with open(path, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("\t") for line in f if line.strip())
