"""Use from other pipelines: model folders, TorchScript/ONNX, Kaldi ark/scp, one-file inference.

>>> from asr_kd.export import posteriors_for_audio                          # doctest: +SKIP
>>> log_post = posteriors_for_audio("exported_model/", "utt.flac")         # (T, S)  # doctest: +SKIP
"""

from asr_kd.export.bundle import Bundle, load_bundle, write_bundle
from asr_kd.export.inference import audio_features, posteriors_for_audio
from asr_kd.export.kaldi import KaldiFeatureSet, read_matrices, write_matrices, write_model_outputs
from asr_kd.export.onnx import export_onnx, onnx_max_abs_diff, onnx_session, run_onnx
from asr_kd.export.torchscript import export_torchscript, load_torchscript, to_torchscript

__all__ = [
    "Bundle", "KaldiFeatureSet", "audio_features", "export_onnx", "export_torchscript", "load_bundle",
    "load_torchscript", "onnx_max_abs_diff", "onnx_session", "posteriors_for_audio", "read_matrices", "run_onnx",
    "to_torchscript", "write_bundle", "write_matrices", "write_model_outputs",
]
