"""The experiment directory: what each stage reads and leaves on disk.

Every stage finds its inputs and writes its outputs through :class:`Experiment`, the one
definition of this layout (the role Kaldi's ``data/<set>`` + ``exp/<sys>`` conventions play for
its ``steps/*.sh`` scripts). A subset is any name given to ``asr-kd prepare`` (a LibriSpeech
folder such as ``train-clean-100`` or a named union such as ``train-960``); no stage assumes one::

    <exp>/
      manifests/                                         asr-kd prepare
        <subset>.tsv        one row per utterance: utt_id, audio_path, num_samples, duration_s,
                            speaker, gender, chapter, transcript (asr_kd.data.manifest)
        summary.json        per subset: hours, frames, speakers, OOV rates, skipped files
      lang/                                              asr-kd prepare
        lexicon.txt         WORD PH1 PH2 ... (asr_kd.data.lexicon; 39 ARPAbet phones + SIL, SPN)
        oov_words.tsv       OOV words with counts and the pronunciation the OOV policy gave them
      feats/<subset>/                                    asr-kd features
        meta.json, shard-NNNNN.{npy,index.tsv,source}   ArrayStore of float32 (T, D) log-mel
                            fbank, 10 ms frames (asr_kd.utils.array_store); meta.json records the
                            fbank settings, each .source the digest of the shard's inputs
        cmvn.npz            per-speaker and global CMVN statistics, applied at load time
      tree/                                              asr-kd tree  (the senone inventory)
        tree.json           senone tree + HMM topology (asr_kd.alignment.SenoneTree): senone ids
                            <-> (phone, HMM state, context); every model output index is a senone
        final_model.npz     the aligner's triphone GMMs (+ the fbank settings they were trained on)
        senone_counts.npy   int64 (num_senones,) frame counts of the final training alignment:
                            the senone priors of hybrid decoding (asr_kd.alignment.priors)
        summary.json, work/ training summary; finished stages, reused on rerun
      ali/<subset>/                                      asr-kd tree (training subset), asr-kd align
        senones/, phones/   ArrayStores of int32 (T,) senone / phone id per feature frame: the
                            frame targets of training and scoring (asr_kd.alignment.outputs)
        skipped.tsv, words.ctm, phones.ctm, report.json (align --report)
      splits/<subset>/                                   asr-kd valid-split
        valid.txt, train.txt, split.json   held-out validation utterances of a training subset
                            and the rest (asr_kd.training.validation)
      lm/<name>.arpa                                     asr-kd lm (default --out), with
        <name>.lexicon.txt, <name>.no_pron.txt, <name>.json
      graph_<name>/                                      asr-kd graph (default --graph-dir)
        HCLG.fst, words.txt, graph.json (asr_kd.decoding.hclg)

Models, ensembles, teacher stores, posteriors and decodes go where their commands' ``--out`` /
``out_dir`` say (the recipes put them under ``<exp>/``); a model file (``asr_kd.models.io``)
records the fbank settings and CMVN mode of its features and its senone count, which the
loader checks against ``feats/`` and ``ali/`` / ``tree/`` (``asr_kd.models.loader``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MANIFESTS_DIR, LANG_DIR, FEATS_DIR, TREE_DIR, ALI_DIR, SPLITS_DIR, LM_DIR = (
    "manifests", "lang", "feats", "tree", "ali", "splits", "lm")
SUMMARY_FILE = "summary.json"
LEXICON_FILE, OOV_FILE = "lexicon.txt", "oov_words.tsv"
TREE_FILE, ALIGNER_FILE, COUNTS_FILE = "tree.json", "final_model.npz", "senone_counts.npy"
SENONES_DIR, PHONES_DIR = "senones", "phones"
PHONES_CTM = "phones.ctm"


@dataclass(frozen=True)
class Experiment:
    """Paths of one experiment directory (see the module docstring for what each holds).

    >>> exp = Experiment("exp/base")
    >>> str(exp.targets_dir("dev-clean"))
    'exp/base/ali/dev-clean/senones'
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # accept str / os.PathLike

    # -- asr-kd prepare ------------------------------------------------------------------------
    @property
    def manifests_dir(self) -> Path:
        return self.root / MANIFESTS_DIR

    def manifest(self, subset: str) -> Path:
        """``manifests/<subset>.tsv``."""
        return self.manifests_dir / f"{subset}.tsv"

    @property
    def prepare_summary(self) -> Path:
        return self.manifests_dir / SUMMARY_FILE

    @property
    def lang_dir(self) -> Path:
        return self.root / LANG_DIR

    @property
    def lexicon(self) -> Path:
        """``lang/lexicon.txt``."""
        return self.lang_dir / LEXICON_FILE

    @property
    def oov_words(self) -> Path:
        return self.lang_dir / OOV_FILE

    # -- asr-kd features -----------------------------------------------------------------------
    def feats_dir(self, subset: str) -> Path:
        """``feats/<subset>/``: the feature ArrayStore of a subset."""
        return self.root / FEATS_DIR / subset

    # -- asr-kd tree / align -------------------------------------------------------------------
    @property
    def tree_dir(self) -> Path:
        return self.root / TREE_DIR

    @property
    def tree_json(self) -> Path:
        """``tree/tree.json``: the senone tree and HMM topology."""
        return self.tree_dir / TREE_FILE

    @property
    def aligner_model(self) -> Path:
        return self.tree_dir / ALIGNER_FILE

    @property
    def senone_counts(self) -> Path:
        return self.tree_dir / COUNTS_FILE

    def ali_dir(self, subset: str) -> Path:
        """``ali/<subset>/``: the alignment of a subset."""
        return self.root / ALI_DIR / subset

    def targets_dir(self, subset: str, kind: str = SENONES_DIR) -> Path:
        """``ali/<subset>/<kind>/``: per-frame ``senones`` or ``phones`` ids (ArrayStore)."""
        return self.ali_dir(subset) / kind

    def phones_ctm(self, subset: str) -> Path:
        return self.ali_dir(subset) / PHONES_CTM

    # -- asr-kd valid-split --------------------------------------------------------------------
    def split_dir(self, subset: str) -> Path:
        """``splits/<subset>/``: the held-out validation split of a training subset."""
        return self.root / SPLITS_DIR / subset

    # -- asr-kd lm / graph ---------------------------------------------------------------------
    @property
    def lm_dir(self) -> Path:
        return self.root / LM_DIR

    def graph_dir(self, name: str) -> Path:
        """``graph_<name>/``: the default place of a decoding graph (``name``: the LM's stem)."""
        return self.root / f"graph_{name}"
