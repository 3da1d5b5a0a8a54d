"""A synthetic training corpus of N hours in the project's store formats, for data-path benchmarks.

Writes an experiment directory as the pipeline leaves it (``asr-kd features`` / ``align`` /
``distill dump-teacher``), with random contents but LibriSpeech's shape::

    feats/<train>/            ArrayStore (T, 40) float32 log-mel-like, utt2spk, cmvn.npz
    ali/<train>/senones/      ArrayStore (T,) int32 senone ids
    teacher/<train>/          teacher store: top-k ids int16 + probs fp16 at T = 2
    feats/<dev>/, ali/<dev>/senones/   a small held-out set for the trainer's validation
    utts/<H>h.txt             the first H hours of training utterances (sorted ids: a prefix)

Utterances last 12.3 s on average (1.5-35 s, as LibriSpeech's training sets: 100 h is about
29k utterances, 36M frames at 10 ms), 120 per speaker, 100 per shard (the features default).
Shards are generated from their own seed and skipped when complete, so an interrupted run
resumes and the result does not depend on interruptions (nor on ``--jobs``). Disk: 244
bytes/frame with float32 features and a top-20 teacher (8.8 GB at 100 h).

Usage::

    python -m benchmarks.synthetic_corpus --out /work/exp/datapath/synth --hours 100 --lists 25 50 100
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

FRAMES_PER_HOUR = 360_000
TRAIN, DEV = "train-synth", "dev-synth"
#: the validation utterances (all of DEV) under <exp>/utts/: random data, so no training utterances are held out
VALID_LIST = "valid.txt"


def validation_overrides(exp: Path) -> list[str]:
    """Trainer overrides that validate on the synthetic DEV subset (the recipes hold out training data)."""
    return [f"data.valid_subset={DEV}", f"data.valid_utts={exp / 'utts' / VALID_LIST}"]
DIM, NUM_SENONES, TOP_K, TEMPERATURE = 40, 1000, 20, 2.0
UTTS_PER_SHARD, UTTS_PER_SPEAKER = 100, 120


def utterance_lengths(hours: float, seed: int = 0) -> np.ndarray:
    """Frames of each utterance, until ``hours`` of audio: mean ~1230 (12.3 s), 150..3500."""
    rng = np.random.default_rng(seed)
    target = int(hours * FRAMES_PER_HOUR)
    lengths = np.clip(rng.normal(1230, 380, size=int(target / 1000) + 10), 150, 3500).astype(np.int64)
    return lengths[: int(np.searchsorted(np.cumsum(lengths), target)) + 1]


def utt_id(i: int) -> str:
    return f"{10000 + i // UTTS_PER_SPEAKER}-0-{i:06d}"  # fixed widths: sorted ids = generation order


def _shard_arrays(lengths: np.ndarray, first: int, seed: int, num_senones: int,
                  top_k: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(utt_id, feats, senones, teacher ids, teacher probs)`` of one shard's utterances."""
    rng = np.random.default_rng([seed, first])
    profile = np.sort(rng.dirichlet(np.ones(top_k)))[::-1] * 0.95  # descending top-k masses, tail 5%
    out = []
    for i, n in enumerate(lengths, start=first):
        speaker_mean = np.random.default_rng([seed, i // UTTS_PER_SPEAKER]).normal(0, 2, DIM).astype(np.float32)
        feats = rng.standard_normal((n, DIM), dtype=np.float32) * 3 + speaker_mean
        senones = rng.integers(0, num_senones, n, dtype=np.int32)
        ids = (senones[:, None] + 37 * np.arange(top_k)[None, :]) % num_senones  # distinct per row, best = senone
        probs = (profile[None, :] * rng.uniform(0.6, 1.0, (n, 1))).astype(np.float16)
        out.append((utt_id(i), feats, senones, ids.astype(np.int16), probs))
    return out


def _writers(exp: Path, subset: str, num_utts: int, num_senones: int, top_k: int, teacher: bool):
    from asr_kd.distillation.teacher_store import TeacherStoreConfig, TeacherStoreWriter
    from asr_kd.features.fbank import FbankConfig
    from asr_kd.utils.array_store import ArrayStoreWriter

    feats_dir = exp / "feats" / subset
    meta = {"kind": "fbank", "fbank": FbankConfig(num_mel_bins=DIM).to_dict(), "utts_per_shard": UTTS_PER_SHARD,
            "num_utterances": num_utts, "synthetic": True}
    feats = ArrayStoreWriter(feats_dir, "float32", (DIM,), meta)
    senones = ArrayStoreWriter(exp / "ali" / subset / "senones", "int32", (),
                               {"kind": "senones", "num_senones": num_senones, "synthetic": True})
    config = TeacherStoreConfig(TEMPERATURE, num_senones, top_k, teachers=("synthetic",), features=str(feats_dir))
    return feats, senones, TeacherStoreWriter(exp / "teacher" / subset, config) if teacher else None


def _write_shard(exp: Path, subset: str, shard: int, first: int, lengths: np.ndarray, num_utts: int, seed: int,
                 num_senones: int, top_k: int, teacher: bool) -> None:
    feats, senones, teacher_writer = _writers(exp, subset, num_utts, num_senones, top_k, teacher)
    done = feats.shard_done(shard) and senones.shard_done(shard)
    if done and (teacher_writer is None or teacher_writer.shard_done(shard)):
        return
    items = _shard_arrays(lengths, first, seed, num_senones, top_k)
    feats.write_shard(shard, [(u, f) for u, f, _, _, _ in items])
    senones.write_shard(shard, [(u, s) for u, _, s, _, _ in items])
    if teacher_writer is not None:
        from asr_kd.distillation.teacher_store import IDS_DIR, PROBS_DIR

        teacher_writer.write_shard(shard, [(u, {IDS_DIR: i, PROBS_DIR: p}) for u, _, _, i, p in items])


def write_subset(exp: Path, subset: str, lengths: np.ndarray, seed: int, teacher: bool, progress: bool = True,
                 num_senones: int = NUM_SENONES, top_k: int = TOP_K, jobs: int = 1) -> None:
    """Features, senones and (optionally) the teacher store of one subset; complete shards are kept."""
    from asr_kd.features.cmvn import Cmvn, CmvnStats
    from asr_kd.features.extract import CMVN_FILE, UTT2SPK
    from asr_kd.utils.array_store import ArrayStore

    _writers(exp, subset, len(lengths), num_senones, top_k, teacher)  # an existing store must match, before any worker
    tasks = [(exp, subset, shard, first, lengths[first : first + UTTS_PER_SHARD], len(lengths), seed, num_senones,
              top_k, teacher) for shard, first in enumerate(range(0, len(lengths), UTTS_PER_SHARD))]
    bar = tqdm(total=len(tasks), desc=f"synthetic {subset}", unit="shard", disable=not progress)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for future in as_completed([pool.submit(_write_shard, *task) for task in tasks]):
                future.result()
                bar.update()
    else:
        for task in tasks:
            _write_shard(*task)
            bar.update()
    bar.close()
    feats_dir = exp / "feats" / subset
    ids = [utt_id(i) for i in range(len(lengths))]
    (feats_dir / UTT2SPK).write_text("".join(f"{u}\t{u.split('-')[0]}\n" for u in ids))
    if not (feats_dir / CMVN_FILE).exists():
        store, speakers = ArrayStore(feats_dir), {}
        for u in ids:  # file reads, not memory maps: RSS stays small on a 100 h store
            speakers.setdefault(u.split("-")[0], CmvnStats.zeros(DIM)).add(store.read(u))
        Cmvn(speakers).save(feats_dir / CMVN_FILE)


def write_corpus(exp: Path, hours: float, lists: list[float] = (), dev_utts: int = 30, teacher: bool = True,
                 progress: bool = True, num_senones: int = NUM_SENONES, top_k: int = TOP_K, jobs: int = 1) -> Path:
    """Write (or complete) the corpus of ``hours`` under ``exp``, plus ``utts/<H>h.txt`` for each of ``lists``."""
    lengths = utterance_lengths(hours)
    write_subset(exp, TRAIN, lengths, 0, teacher, progress, num_senones, top_k, jobs)
    dev = utterance_lengths(dev_utts * 1230 / FRAMES_PER_HOUR, seed=1)[:dev_utts]
    write_subset(exp, DEV, dev, 1, False, progress, num_senones, top_k)
    (exp / "utts").mkdir(parents=True, exist_ok=True)
    (exp / "utts" / VALID_LIST).write_text("".join(utt_id(i) + "\n" for i in range(len(dev))))
    ends = np.cumsum(lengths)
    for h in lists:
        count = min(int(np.searchsorted(ends, h * FRAMES_PER_HOUR)) + 1, len(lengths))
        (exp / "utts" / f"{h:g}h.txt").write_text("".join(utt_id(i) + "\n" for i in range(count)))
    return exp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="experiment directory to write (resumable)")
    parser.add_argument("--hours", type=float, required=True)
    parser.add_argument("--lists", type=float, nargs="*", default=[], help="also write utts/<H>h.txt prefixes")
    parser.add_argument("--no-teacher", action="store_true", help="skip the teacher store")
    parser.add_argument("--num-senones", type=int, default=NUM_SENONES)
    parser.add_argument("--top-k", type=int, default=TOP_K, help="teacher store: senones kept per frame")
    parser.add_argument("--jobs", type=int, default=1, help="processes writing shards")
    args = parser.parse_args(argv)
    write_corpus(args.out, args.hours, args.lists, teacher=not args.no_teacher, num_senones=args.num_senones,
                 top_k=args.top_k, jobs=args.jobs)
    frames = int(np.sum(utterance_lengths(args.hours)))
    print(f"synthetic corpus {args.out}: {args.hours:g} h, {len(utterance_lengths(args.hours))} utterances, "
          f"{frames} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
