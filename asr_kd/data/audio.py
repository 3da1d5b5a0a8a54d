"""Audio reading with the checks a corpus needs (soundfile does the decoding)."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from asr_kd.utils.errors import AsrKdError

SAMPLE_RATE = 16000
#: The frame count libsndfile reports when a header does not give the length (a FLAC whose
#: STREAMINFO total-samples field is 0 means "unknown"): SF_COUNT_MAX, 9.2e18.
UNKNOWN_LENGTH = 2**63 - 1
#: Frames per libsndfile read call when the length is unknown.
_BLOCK_FRAMES = 1 << 16


def _decode(path: str | os.PathLike) -> tuple[np.ndarray, int, int | None]:
    """``(samples (N, channels) float32, sample rate, header length or None if unknown)``."""
    try:
        with sf.SoundFile(str(path)) as f:
            if f.frames != UNKNOWN_LENGTH:
                return f.read(dtype="float32", always_2d=True), f.samplerate, f.frames
            return _read_unknown_length(f), f.samplerate, None
    except FileNotFoundError:
        raise AsrKdError(f"{path}: audio file is missing") from None
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AsrKdError(f"{path}: unreadable or corrupt audio ({err})") from None


def _read_unknown_length(f: sf.SoundFile) -> np.ndarray:
    """Decode a file whose header does not give its length, block by block until the end.

    soundfile's own ``read`` allocates the header's length (9.2e18 frames) or, in blocks,
    seeks past the end and fails; libsndfile's ``sf_readf_float`` simply returns fewer
    frames at the end, so this calls it directly through soundfile's cffi handle.
    """
    blocks = []
    while True:
        block = np.empty((_BLOCK_FRAMES, f.channels), dtype=np.float32)
        n = sf._snd.sf_readf_float(f._file, sf._ffi.cast("float *", block.ctypes.data), _BLOCK_FRAMES)
        if sf._snd.sf_error(f._file):  # a decoding error also cuts a read short: not the end of the audio
            raise RuntimeError(sf._ffi.string(sf._snd.sf_strerror(f._file)).decode(errors="replace"))
        if n <= 0:
            break
        blocks.append(block[:n])
    return np.concatenate(blocks) if blocks else np.zeros((0, f.channels), dtype=np.float32)


def read_audio(
    path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, expected_samples: int | None = None
) -> np.ndarray:
    """Read a mono file as float32 samples in [-1, 1], shape ``(num_samples,)``.

    ``expected_samples`` (from the manifest) catches truncated files whose header still
    claims the original length.

    Raises:
        AsrKdError: naming the file: missing, corrupt or truncated (decodes to fewer samples
            than its header says), wrong sample rate, not mono, empty, NaN/Inf samples, or a
            length other than ``expected_samples``.
    """
    samples, file_rate, header_samples = _decode(path)
    if file_rate != sample_rate:
        raise AsrKdError(f"{path}: sample rate {file_rate} Hz, expected {sample_rate} Hz")
    if samples.shape[1] != 1:
        raise AsrKdError(f"{path}: {samples.shape[1]} channels, expected mono")
    if samples.shape[0] == 0:
        raise AsrKdError(f"{path}: empty audio (0 samples)")
    if header_samples is not None and samples.shape[0] != header_samples:
        raise AsrKdError(f"{path}: decoded {samples.shape[0]} samples but the header says {header_samples} "
                         "(truncated file)")
    if expected_samples is not None and samples.shape[0] != expected_samples:
        raise AsrKdError(
            f"{path}: decoded {samples.shape[0]} samples but the manifest says {expected_samples} "
            "(truncated or changed file)"
        )
    if not np.isfinite(samples).all():
        raise AsrKdError(f"{path}: audio contains NaN or Inf samples")
    return samples[:, 0]


def check_window(path: str | os.PathLike, num_samples: int, frame_length_ms: float = 25.0,
                 sample_rate: int = SAMPLE_RATE) -> None:
    """Raise :class:`AsrKdError` naming ``path`` if its audio is shorter than one analysis window."""
    if num_samples < int(sample_rate * frame_length_ms / 1000):
        raise AsrKdError(f"{path}: {num_samples} samples ({1000 * num_samples / sample_rate:.1f} ms) is shorter "
                         f"than one {frame_length_ms:g} ms analysis window: no feature frame")


def num_frames(num_samples: int, frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0,
               sample_rate: int = SAMPLE_RATE) -> int:
    """Frames Kaldi-style framing (``snip_edges=True``) gives ``num_samples`` samples."""
    window = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    return 0 if num_samples < window else 1 + (num_samples - window) // shift
