"""Named model sizes: ``tiny`` (tests), ``mini`` (CPU, Mini LibriSpeech), ``paper`` (GPU).

A preset is constructor kwargs without ``input_dim``/``num_senones`` (those come from the
data). Parameters with 40-dim input and 1000 senones: dnn tiny 42k, mini 1.37M, paper 51.1M;
conformer tiny 51k, mini 0.75M, paper 18.5M.
"""

from __future__ import annotations

from asr_kd.utils.errors import AsrKdError

PRESETS: dict[str, dict[str, dict]] = {
    "dnn": {
        "tiny": dict(left=3, right=2, hidden_dim=32, num_layers=2, dropout=0.1),
        # 16 frames (10 past + 5 future): ~4500-5000 frames/s fwd+bwd on 1 busy CPU core (measured).
        "mini": dict(left=10, right=5, hidden_dim=512, num_layers=3, dropout=0.1),
        # Hinton et al. 2015: 26 frames (20 past + 5 future), 8 x 2560 ReLU.
        "paper": dict(left=20, right=5, hidden_dim=2560, num_layers=8, dropout=0.1),
    },
    "conformer": {
        "tiny": dict(d_model=32, num_heads=2, ffn_dim=64, num_layers=1, kernel_size=7, dropout=0.1),
        # ~1200 frames/s on 1 CPU core: attention over whole utterances is the cost.
        "mini": dict(d_model=96, num_heads=4, ffn_dim=384, num_layers=3, kernel_size=15, dropout=0.1),
        "paper": dict(d_model=256, num_heads=4, ffn_dim=1024, num_layers=12, kernel_size=31, dropout=0.1),
    },
}


def preset(arch: str, name: str) -> dict:
    """Constructor kwargs of preset ``name`` of ``arch`` (a copy, safe to modify)."""
    try:
        return dict(PRESETS[arch][name])
    except KeyError:
        choices = {a: sorted(p) for a, p in PRESETS.items()}
        raise AsrKdError(f"unknown model preset {arch}/{name}; choose from {choices}") from None
