"""``asr-kd tree``: flat start -> monophones -> decision tree -> triphones -> final alignment.

Stages (Kaldi's ``train_mono.sh``, ``train_deltas.sh`` in one process, outputs under
``<exp>/tree/``; a finished stage is loaded instead of rerun, so a killed job resumes):

1. **mono**: equal alignment of the canonical path of each transcript, single Gaussians per
   (phone, state), then ``mono_iters`` rounds of Viterbi realignment, re-estimation of the
   transition probabilities, one EM step per senone, mixture splitting towards
   ``mono_gaussians`` and a second EM step. Writes ``work/mono_tree.json`` and the last
   monophone alignment ``work/mono_ali.npz``.
2. **tree**: triphone statistics of the last monophone alignment, likelihood-gain clustering
   to ``num_senones`` (:mod:`asr_kd.alignment.cluster`). Writes ``work/tri_tree.json``.
3. **tri**: single Gaussians per senone from the monophone alignment relabelled with the tree,
   then ``tri_iters`` rounds like stage 1 towards ``tri_gaussians``, and a last realignment.
   Writes ``tree.json``, ``final_model.npz``, ``senone_counts.npy`` and ``<exp>/ali/<subset>/``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asr_kd.alignment.aligner import ACOUSTIC_SCALE, AlignerModel, AlignmentRun, align_corpus
from asr_kd.alignment.cluster import build_tree, context_stats, estimate_forward_probs, tree_senones
from asr_kd.alignment.feats import load_alignment_features
from asr_kd.alignment.gmm import DiagGmms, single_threaded
from asr_kd.alignment.outputs import write_alignment_dir
from asr_kd.alignment.priors import save_senone_counts
from asr_kd.alignment.tree import SenoneTree
from asr_kd.data import load_lexicon, read_manifest
from asr_kd.experiment import Experiment
from asr_kd.features.dataset import FeatureSet
from asr_kd.models.loader import check_feature_settings
from asr_kd.utils.atomic import write_json, write_with
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("alignment")
#: Kaldi's variance floor: 1% of the global variance of the training features.
VAR_FLOOR_FRACTION = 0.01


@dataclass(frozen=True)
class AlignerTrainingConfig:
    """Training schedule; defaults fit Mini LibriSpeech (2-5 h) in a few minutes on 2 cores.

    ``num_senones``: 1000 for ~1M training frames keeps ~1000 frames per senone, enough for
    both the GMM here and a DNN output layer (Kaldi's mini_librispeech tri1 uses 2000 leaves
    for 5 h; we have about half the data).
    """

    num_senones: int = 1000
    mono_iters: int = 6
    mono_gaussians: int = 1000
    tri_iters: int = 6
    tri_gaussians: int = 10000
    min_leaf_frames: int = 100
    num_states: int = 3
    acoustic_scale: float = ACOUSTIC_SCALE
    interword_silence: bool = True


@dataclass(frozen=True)
class CorpusData:
    """Aligner features ``utt_id -> (T, D)`` and transcripts of one subset."""

    feats: dict[str, np.ndarray]
    transcripts: dict[str, str]
    feature_config: dict


def load_corpus(exp_dir: str | os.PathLike, subset: str) -> CorpusData:
    """Features (``<exp>/feats/<subset>``) and transcripts (manifest) of a subset."""
    exp = Experiment(exp_dir)
    utts = read_manifest(exp.manifest(subset))
    features = FeatureSet(exp.feats_dir(subset))
    missing = [u.utt_id for u in utts if u.utt_id not in features.store]
    if missing:
        raise AsrKdError(f"{len(missing)} utterances of {subset} have no features in {features.dir}, "
                         f"e.g. {missing[:3]} (rerun `asr-kd features`)")
    ids = [u.utt_id for u in utts]
    return CorpusData(load_alignment_features(features, ids), {u.utt_id: u.transcript for u in utts},
                      features.store.meta.get("fbank", {}))


_LABEL_FIELDS = ("senones", "phones", "hmm_state", "entered", "left", "right")


@dataclass
class _Labels:
    """Per-frame labels of a whole alignment run, concatenated in ``utt_ids`` order."""

    utt_ids: list[str]
    frames: np.ndarray
    senones: np.ndarray
    phones: np.ndarray
    hmm_state: np.ndarray
    entered: np.ndarray
    left: np.ndarray
    right: np.ndarray

    def save(self, path: Path) -> None:
        arrays = {k: getattr(self, k) for k in _LABEL_FIELDS}
        write_with(path, lambda tmp: np.savez(tmp, utt_ids=np.array(self.utt_ids), **arrays), suffix=".npz")

    @classmethod
    def load(cls, path: Path, feats: dict[str, np.ndarray]) -> _Labels:
        with np.load(path) as z:
            utt_ids = [str(u) for u in z["utt_ids"]]
            missing = [u for u in utt_ids if u not in feats]
            if missing:
                raise AsrKdError(f"{path}: alignment of utterances that are no longer in the subset, e.g. "
                                 f"{missing[:3]}; remove {path.parent} to retrain")
            return cls(utt_ids, np.concatenate([feats[u] for u in utt_ids]), **{k: z[k] for k in _LABEL_FIELDS})


def _labels(run: AlignmentRun, feats: dict[str, np.ndarray]) -> _Labels:
    if not run.alignments:
        raise AsrKdError(f"no utterance could be aligned ({len(run.skipped)} skipped, e.g. "
                         f"{next(iter(run.skipped.items()), None)})")
    alis = list(run.alignments.values())
    return _Labels(
        utt_ids=list(run.alignments),
        frames=np.concatenate([feats[a.utt_id] for a in alis]),
        **{k: np.concatenate([getattr(a, k) for a in alis]) for k in _LABEL_FIELDS},
    )


class Trainer:
    """Runs the stages of the module docstring for one experiment and subset."""

    def __init__(self, exp_dir: str | os.PathLike, subset: str, config: AlignerTrainingConfig, jobs: int = 1,
                 progress: bool = True) -> None:
        if config.mono_iters < 1 or config.tri_iters < 0:
            raise AsrKdError(f"need at least 1 monophone round and 0 triphone rounds, got {config.mono_iters} "
                             f"and {config.tri_iters}")
        self.exp = Experiment(exp_dir)
        self.subset = subset
        self.config = config
        self.jobs = jobs
        self.progress = progress
        self.tree_dir = self.exp.tree_dir
        self.work = self.tree_dir / "work"
        self.lexicon = load_lexicon(self.exp.lexicon)
        self.data = load_corpus(self.exp.root, subset)
        all_frames = np.concatenate(list(self.data.feats.values()))
        self.var_floor = VAR_FLOOR_FRACTION * all_frames.var(0)
        self.align_cpu = 0.0
        self.align_audio = 0.0
        self.passes = 0

    def _align(self, tree: SenoneTree, gmms: DiagGmms | None, desc: str) -> AlignmentRun:
        model = AlignerModel(tree, gmms, self.lexicon, self.config.acoustic_scale, self.config.interword_silence)
        run = align_corpus(model, self.data.feats, self.data.transcripts, self.jobs, desc, self.progress)
        if gmms is not None:
            self.align_cpu += run.cpu_seconds
            self.align_audio += run.audio_seconds
            self.passes += 1
        log.info("%s: %d aligned, %d skipped, %.1f s wall, %.0fx real time per core", desc,
                 len(run.alignments), len(run.skipped), run.wall_seconds, run.realtime_factor_per_core)
        return run

    def _train_rounds(self, tree: SenoneTree, gmms: DiagGmms, iters: int, target: int,
                      name: str) -> tuple[SenoneTree, DiagGmms, _Labels]:
        """``iters`` x (realign, re-estimate transitions, EM step, split towards ``target``, EM step).

        Returns the updated models and the labels of the last alignment.
        """
        start_gaussians = gmms.num_gaussians
        labels = None
        for it in range(iters):
            labels = _labels(self._align(tree, gmms, f"{name} {it + 1}/{iters}"), self.data.feats)
            tree = tree.with_transitions(estimate_forward_probs(labels.phones, labels.hmm_state, labels.entered,
                                                                self.config.num_states))
            gmms = gmms.reestimate(labels.frames, labels.senones, self.var_floor)
            goal = start_gaussians + (target - start_gaussians) * (it + 1) // iters
            gmms = gmms.split(goal, np.bincount(labels.senones, minlength=tree.num_senones))
            # Fit the split Gaussians before they are used to align (cheaper than a realignment).
            gmms = gmms.reestimate(labels.frames, labels.senones, self.var_floor)
        return tree, gmms, labels

    def mono(self) -> tuple[SenoneTree, _Labels]:
        """Monophone training; returns the final monophone tree and its last training alignment."""
        tree_path, labels_path = self.work / "mono_tree.json", self.work / "mono_ali.npz"
        if tree_path.exists() and labels_path.exists():
            log.info("mono: reusing %s", labels_path)
            return SenoneTree.load(tree_path), _Labels.load(labels_path, self.data.feats)
        tree = SenoneTree.monophone(self.config.num_states)
        labels = _labels(self._align(tree, None, "flat start"), self.data.feats)
        gmms = DiagGmms.single_gaussians(labels.frames, labels.senones, tree.num_senones, self.var_floor)
        tree, gmms, labels = self._train_rounds(tree, gmms, self.config.mono_iters, self.config.mono_gaussians,
                                                "mono")
        labels.save(labels_path)
        tree.save(tree_path)
        return tree, labels

    def triphone_tree(self, mono_tree: SenoneTree, labels: _Labels) -> SenoneTree:
        """Cluster triphone states on the monophone alignment."""
        tree_path = self.work / "tri_tree.json"
        if tree_path.exists():
            log.info("tree: reusing %s", tree_path)
            return SenoneTree.load(tree_path)
        stats = context_stats(labels.frames, labels.phones, labels.hmm_state, labels.left, labels.right)
        tree = build_tree(stats, self.config.num_senones, self.var_floor, self.config.min_leaf_frames,
                          mono_tree.transitions, self.config.num_states)
        log.info("tree: %d senones from %d seen triphone states", tree.num_senones, len(stats.count))
        tree.save(tree_path)
        return tree

    def triphones(self, tree: SenoneTree, mono_labels: _Labels) -> tuple[SenoneTree, DiagGmms, AlignmentRun]:
        relabel = tree_senones(tree, mono_labels.phones, mono_labels.hmm_state, mono_labels.left, mono_labels.right)
        gmms = DiagGmms.single_gaussians(mono_labels.frames, relabel, tree.num_senones, self.var_floor)
        tree, gmms, _ = self._train_rounds(tree, gmms, self.config.tri_iters, self.config.tri_gaussians, "tri")
        return tree, gmms, self._align(tree, gmms, "final")

    def run(self) -> dict:
        """All stages; returns the summary also written to ``<exp>/tree/summary.json``."""
        with single_threaded():
            return self._run()

    def _run(self) -> dict:
        start = time.perf_counter()
        mono_tree, mono_labels = self.mono()
        tree = self.triphone_tree(mono_tree, mono_labels)
        tree, gmms, final = self.triphones(tree, mono_labels)
        tree.save(self.exp.tree_json)
        gmms.save(self.exp.aligner_model, var_floor=self.var_floor,
                  acoustic_scale=np.array(self.config.acoustic_scale),
                  interword_silence=np.array(self.config.interword_silence),
                  feature_config=np.array(json.dumps(self.data.feature_config, sort_keys=True)))
        counts = np.zeros(tree.num_senones, dtype=np.int64)
        for ali in final.alignments.values():
            counts += np.bincount(ali.senones, minlength=tree.num_senones)
        save_senone_counts(self.tree_dir, counts)
        meta = {"num_senones": tree.num_senones, "tree": str(self.exp.tree_json), "subset": self.subset}
        write_alignment_dir(self.exp.ali_dir(self.subset), final.alignments, final.skipped, meta)
        summary = {
            "subset": self.subset,
            "config": asdict(self.config),
            "num_senones": tree.num_senones,
            "num_gaussians": gmms.num_gaussians,
            "aligned": len(final.alignments),
            "skipped": len(final.skipped),
            "senones_without_frames": int((counts == 0).sum()),
            "wall_seconds": round(time.perf_counter() - start, 1),
            "final_pass_x_realtime_per_core": round(final.realtime_factor_per_core, 1),
            "alignment_passes": self.passes,
            "alignment_cpu_seconds": round(self.align_cpu, 1),
            "all_passes_x_realtime_per_core": round(self.align_audio / max(self.align_cpu, 1e-9), 1),
        }
        write_json(self.tree_dir / "summary.json", summary)
        return summary


def load_aligner(exp_dir: str | os.PathLike) -> AlignerModel:
    """The final tree + GMMs of ``asr-kd tree`` with the lexicon of ``exp_dir``."""
    exp = Experiment(exp_dir)
    tree = SenoneTree.load(exp.tree_json)
    gmms, extra = DiagGmms.load(exp.aligner_model)
    if gmms.num_senones != tree.num_senones:
        raise AsrKdError(f"{exp.aligner_model} has {gmms.num_senones} senones but {exp.tree_json} "
                         f"has {tree.num_senones} (files from different runs)")
    feature_config = json.loads(str(extra["feature_config"])) if "feature_config" in extra else None
    return AlignerModel(tree, gmms, load_lexicon(exp.lexicon),
                        float(extra.get("acoustic_scale", ACOUSTIC_SCALE)),
                        bool(extra.get("interword_silence", True)), feature_config)


def align_subset(exp_dir: str | os.PathLike, subset: str, jobs: int = 1, progress: bool = True) -> dict:
    """Align ``subset`` with the trained models into ``<exp>/ali/<subset>``; returns a summary."""
    exp = Experiment(exp_dir)
    model = load_aligner(exp_dir)
    data = load_corpus(exp_dir, subset)
    check_feature_settings(f"the aligner ({exp.aligner_model})", model.feature_config, exp.feats_dir(subset),
                           data.feature_config)
    with single_threaded():
        run = align_corpus(model, data.feats, data.transcripts, jobs, f"align {subset}", progress)
    meta = {"num_senones": model.tree.num_senones, "tree": str(exp.tree_json), "subset": subset}
    out = exp.ali_dir(subset)
    write_alignment_dir(out, run.alignments, run.skipped, meta)
    return {
        "subset": subset,
        "aligned": len(run.alignments),
        "skipped": len(run.skipped),
        "audio_hours": run.audio_seconds / 3600,
        "wall_seconds": run.wall_seconds,
        "x_realtime_per_core": run.realtime_factor_per_core,
        "out": str(out),
    }
