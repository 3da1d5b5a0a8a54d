"""Stage 1, data: LibriSpeech manifests, lexicon (CMUdict + OOV policy), training subsets."""

from asr_kd.data.lexicon import Lexicon, cmudict_lexicon, load_lexicon, oov_report, read_lexicon
from asr_kd.data.librispeech import ScanReport, parse_subset_spec, scan_subset, scan_union
from asr_kd.data.manifest import Utterance, read_manifest, write_manifest
from asr_kd.data.subset import select_fraction, summarize

__all__ = [
    "Lexicon", "ScanReport", "Utterance", "cmudict_lexicon", "load_lexicon",
    "oov_report", "parse_subset_spec", "read_lexicon", "read_manifest", "scan_subset", "scan_union",
    "select_fraction", "summarize", "write_manifest",
]
