"""Stage 4, acoustic models: the paper's DNN, a conformer, ensembles, model files (``asr-kd posteriors``).

>>> from asr_kd.models import build, save, load                              # doctest: +SKIP
>>> model = build("dnn", "mini", input_dim=40, num_senones=1000)           # doctest: +SKIP
>>> save("m.pt", model, {"feature": {...}})                                 # doctest: +SKIP
>>> model, meta = load("m.pt")         # or load("ensemble.json") -> Ensemble  # doctest: +SKIP
>>> loaded = load_model("m.pt")        # + checks against features/targets/trees # doctest: +SKIP
>>> features = loaded.open_features("exp/feats/dev-clean-2")                  # doctest: +SKIP
"""

from asr_kd.models.conformer import ConformerAM
from asr_kd.models.dnn import DNN
from asr_kd.models.ensemble import COMBINE_MODES, Ensemble, combine_logits
from asr_kd.models.inference import log_posteriors, utterance_batches, utterance_log_posteriors
from asr_kd.models.io import ARCHS, build, ensemble_of, load, load_ensemble, save, save_ensemble
from asr_kd.models.loader import LoadedModel, load_model
from asr_kd.models.presets import PRESETS, preset

__all__ = [
    "ARCHS", "COMBINE_MODES", "DNN", "PRESETS", "ConformerAM", "Ensemble", "LoadedModel", "build", "combine_logits",
    "ensemble_of", "load", "load_ensemble", "load_model", "log_posteriors", "preset", "save", "save_ensemble",
    "utterance_batches", "utterance_log_posteriors",
]
