"""Re-temperable low-rank soft targets: one teacher pass, targets faithful at every stored T.

**What a frame stores** (``S`` senones, ``n`` served temperatures; the defaults ``k = 8``,
``r = 96`` take 100 bytes at S = 1000 and n = 4, 5% of dense fp16; ``r = 192``, 160 bytes = 1%
at S = 8000):

* ``ids``, ``logp``: the ``k`` senones with the largest log-probabilities ``l = log p_{T0}`` at the
  base temperature ``T0`` (1 by default) and those log-probabilities (int16 + fp16), exactly;
* ``coef``: ``r`` coefficients of the frame's *tail profile* (:func:`tail_profile`) in a PCA basis
  fitted once on ~20000 training frames of the same teacher before the dump, quantised to 8-bit
  codes for the leading quarter and 4-bit codes for the rest (:class:`LowRankBasis`);
* ``tail``: the exact tail mass ``R_T`` (as ``log R_T``, fp16) at every served T, from the
  teacher's own targets at that T (an ensemble: the paper's mean of tempered member
  probabilities), computed as a logsumexp over the tail (``1 - sum_top p`` in float32 loses a
  confident frame's 1e-9 tail).

**The tail profile** (``2 S`` values): the ``T0`` log-probabilities with the top-k clipped to the
k-th value and centred (so the basis spends no rank on the peaks stored exactly), and, for an
ensemble, how far the members' mean logits (the first-order limit of the mean of tempered members
as T grows) lie from the ``T0`` mean.

**The target at a served T** (:meth:`LowRankTargets.log_probs`, :func:`retemper`): the top-k get
``(1 - R_T) softmax(l_top T0 / T)``, the other senones ``R_T softmax(t T0 / T)`` with ``t`` the
reconstructed T0 part plus ``w(T)`` times the ensemble part (``w = 1 - sqrt(T0 / T)``,
:func:`ensemble_weight`), shifted to its exact mass at ``T0`` and clipped below the k-th value.

**What is exact and what is not.** Both masses (top-k vs tail) are exact at every served T. For
one model the top-k shape is exact at every T too (``softmax(log p_1 / T) = softmax(z / T)``); the
tail shape is the PCA's: what is left is rank truncation and code rounding. For an ensemble the
paper's target, ``mean_m softmax(z_m / T)``, is no re-tempering of its T = 1 mean: its exact
T = 1 mean re-tempered (no compression at all) is off by KL 0.012 / 0.024 / 0.013 nats at
T = 2 / 5 / 10 on the E1 ensemble; the ensemble part of the profile brings the store below that
floor at T = 5 and 10. The measured errors of this and every other design considered, with the
commands, are in ``recipes/mini_librispeech/README.md`` ("Faithful soft targets at every T"):
``local/store_designs.py`` (designs at one byte budget) and ``asr-kd distill fidelity`` (stores).

**Why this design** (measured there at 100 bytes/frame on the 1000-senone E1 ensemble): a
renormalised top-25 gives zero probability to the tail (KL infinite, 32% of the mass at T = 5);
spreading the tail mass uniformly or along the mean profile, with exact tail masses, keeps the
mass but not which senones hold it (KL 0.4-0.6 at T = 2-5); 8-bit log-probabilities buy a larger
k but not the tail. The PCA tail keeps that identity ("dark knowledge", most of the mass at high
T) at ~0.6 bytes per component; a larger k costs 4 bytes per senone and helped less than rank.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from asr_kd.utils.atomic import write_with
from asr_kd.utils.errors import AsrKdError

#: log tail masses are clamped here: e^-80 is 0 for every purpose, and -inf would make NaNs
MIN_LOG_MASS = -80.0
#: largest |code| of an 8-bit and of a 4-bit coefficient (symmetric: 0 stays exact)
CODE_MAX = {8: 127, 4: 7}
#: coefficients are quantised with steps from this quantile of |coeff| on the fitting frames
STEP_QUANTILE = 0.999
BASIS_ARRAYS = ("mean", "components", "explained", "steps")
#: weight of the ensemble part of a profile in the PCA, relative to the T0 part (measured: 0.5
#: beat 1.0 at every T on the E1 ensemble, the README's design study)
ENSEMBLE_WEIGHT = 0.5
#: the ensemble part enters the tail at T with w(T) = 1 - (T0 / T)^ENSEMBLE_EXPONENT (measured:
#: 0.5 beat 1 and 2)
ENSEMBLE_EXPONENT = 0.5


def default_rank_8bit(rank: int) -> int:
    """How many of ``rank`` coefficients get 8 bits (the rest 4): a quarter, the leading ones.

    Measured on the E1 ensemble at 60 coefficient bytes per frame (1000 senones): 24 x 8 + 72 x 4
    bits gave KL 0.027 / 0.022 at T = 1 / 2, against 0.035 / 0.029 for 60 x 8 bits and 0.041 /
    0.035 for 120 x 4 bits (16 x 8 + 88 x 4 and 32 x 8 + 56 x 4: within 3% of it).
    """
    return (rank + 2) // 4


@dataclass(frozen=True)
class LowRankBasis:
    """A PCA basis of tail profiles (:func:`tail_profile`, ``2 S`` values per frame),
    ``profile ~ mean + coeffs @ components``, and how its coefficients are coded: the first
    ``rank_8bit`` as 8-bit codes, the others as 4-bit codes (two per byte), ``coeff ~ step * code``.

    Attributes:
        mean: ``(2 S,)`` float32 mean tail profile of the fitting frames.
        components: ``(r, 2 S)`` float32 orthonormal rows, by decreasing variance (``r`` may be 0).
        explained: ``(r,)`` float32 fraction of the profiles' variance each component explains.
        steps: ``(r,)`` float32 quantisation step of each coefficient: ``CODE_MAX * step`` = the
            99.9th percentile of ``|coeff|`` on the fitting frames (rarer values clip).
        rank_8bit: leading coefficients with 8-bit codes.
    """

    mean: torch.Tensor
    components: torch.Tensor
    explained: torch.Tensor
    steps: torch.Tensor
    rank_8bit: int

    @property
    def rank(self) -> int:
        return int(self.components.shape[0])

    @property
    def num_senones(self) -> int:
        return int(self.mean.shape[0]) // 2

    @property
    def code_bytes(self) -> int:
        """Bytes of one frame's coefficient codes."""
        return code_bytes(self.rank, self.rank_8bit)

    def project(self, profiles: torch.Tensor) -> torch.Tensor:
        """``(N, 2 S)`` tail profiles -> ``(N, r)`` coefficients."""
        return (profiles.float() - self.mean.to(profiles.device)) @ self.components.to(profiles.device).T

    def reconstruct(self, coeffs: torch.Tensor) -> torch.Tensor:
        """``(N, r)`` coefficients -> ``(N, 2 S)`` tail profiles (float32)."""
        return self.mean.to(coeffs.device) + coeffs.float() @ self.components.to(coeffs.device)

    def tail_shape(self, coeffs: torch.Tensor, weight: float) -> torch.Tensor:
        """``(N, r)`` coefficients -> ``(N, S)`` :func:`profile_at` ``weight`` of their profiles,
        combining the basis first (one ``N x r x S`` product instead of ``N x r x 2 S``)."""
        mean = profile_at(self.mean.to(coeffs.device), weight)
        return mean + coeffs.float() @ profile_at(self.components.to(coeffs.device), weight)

    def code_max(self) -> torch.Tensor:
        """``(r,)`` largest |code| of each coefficient."""
        return torch.tensor([CODE_MAX[8]] * self.rank_8bit + [CODE_MAX[4]] * (self.rank - self.rank_8bit))

    def encode(self, coeffs: torch.Tensor) -> torch.Tensor:
        """``(N, r)`` float coefficients -> ``(N, code_bytes)`` uint8 codes (what a store keeps)."""
        cmax = self.code_max().to(coeffs.device)
        codes = torch.round(coeffs.float() / self.steps.to(coeffs.device)).clamp(-cmax, cmax).to(torch.int8)
        wide, narrow = codes[:, : self.rank_8bit], codes[:, self.rank_8bit :]
        if narrow.shape[1] % 2:  # pad with a zero code
            narrow = torch.cat([narrow, torch.zeros_like(narrow[:, :1])], dim=1)
        nibbles = (narrow + 8).to(torch.uint8)  # 1..15
        return torch.cat([wide.view(torch.uint8), nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)], dim=1)

    def decode(self, packed: torch.Tensor) -> torch.Tensor:
        """``(N, code_bytes)`` uint8 codes -> ``(N, r)`` float32 coefficients."""
        wide = packed[:, : self.rank_8bit].contiguous().view(torch.int8).float()
        pairs = packed[:, self.rank_8bit :]
        narrow = torch.stack([pairs & 15, pairs >> 4], dim=-1).flatten(1)[:, : self.rank - self.rank_8bit]
        return torch.cat([wide, narrow.float() - 8], dim=1) * self.steps.to(packed.device)

    def to(self, device: torch.device | str) -> LowRankBasis:
        return LowRankBasis(*(x.to(device) for x in (self.mean, self.components, self.explained, self.steps)),
                            self.rank_8bit)

    def save(self, path: str | os.PathLike, fit_utts: Sequence[str] = ()) -> None:
        """Atomically write ``path`` (``.npz``), with the utterances it was fitted on (provenance)."""
        arrays = {name: getattr(self, name).cpu().numpy() for name in BASIS_ARRAYS}
        arrays["rank_8bit"] = np.array(self.rank_8bit)
        arrays["fit_utts"] = np.array(list(fit_utts), dtype=str)
        write_with(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LowRankBasis:
        path = Path(path)
        if not path.exists():
            raise AsrKdError(f"{path}: missing PCA basis of a low-rank teacher store (store damaged)")
        with np.load(path) as data:
            return cls(*(torch.from_numpy(np.asarray(data[k], dtype=np.float32)) for k in BASIS_ARRAYS),
                       int(data["rank_8bit"]))


def code_bytes(rank: int, rank_8bit: int) -> int:
    """Bytes of ``rank`` coefficient codes of which ``rank_8bit`` are 8-bit and the rest 4-bit."""
    return rank_8bit + (rank - rank_8bit + 1) // 2


def rank_for_bytes(nbytes: int) -> int:
    """The largest rank whose codes (:func:`default_rank_8bit` of them 8-bit) fit ``nbytes``.

    Example:
        >>> rank_for_bytes(60), rank_for_bytes(120)
        (96, 192)
    """
    rank = 0
    while code_bytes(rank + 1, default_rank_8bit(rank + 1)) <= nbytes:
        rank += 1
    return rank


def fit_utterances(path: str | os.PathLike) -> list[str]:
    """The utterance ids a saved basis was fitted on."""
    with np.load(path) as data:
        return [str(u) for u in data["fit_utts"]]


def uniform_tail(num_senones: int) -> LowRankBasis:
    """Rank 0 with a flat mean: the tail mass is spread uniformly over the left-out senones."""
    return LowRankBasis(torch.zeros(2 * num_senones), torch.zeros(0, 2 * num_senones), torch.zeros(0),
                        torch.zeros(0), 0)


def tail_profile(log_probs: torch.Tensor, top_k: int, asymptotic: torch.Tensor | None = None) -> torch.Tensor:
    """What the PCA basis models: ``(..., 2 S)`` = [T0 part, ensemble part] of ``(..., S)`` log-probabilities.

    * T0 part: the log-probabilities at ``T0`` with the top-k entries clipped to the k-th value,
      centred per frame (softmax is blind to a per-frame shift);
    * ensemble part: ``ENSEMBLE_WEIGHT * (asymptotic - log_probs)``, centred, top-k entries 0:
      how far the high-T limit of an ensemble, ``asymptotic = log softmax(mean_m z_m / T0)``,
      lies from its ``T0`` mean (0 for one model, the default).
    """
    kth = torch.topk(log_probs, top_k, dim=-1)
    clipped = torch.minimum(log_probs.float(), kth.values[..., -1:])
    if asymptotic is None:
        ensemble = torch.zeros_like(clipped)
    else:
        diff = asymptotic.float() - log_probs.float()
        ensemble = (ENSEMBLE_WEIGHT * (diff - diff.mean(-1, keepdim=True))).scatter(-1, kth.indices, 0.0)
    return torch.cat([clipped - clipped.mean(-1, keepdim=True), ensemble], dim=-1)


def ensemble_weight(base_temperature: float, temperature: float) -> float:
    """w(T) = 1 - (T0 / T)^ENSEMBLE_EXPONENT in [0, 1]: 0 at T0 (the exact mean), towards 1 (the
    mean of logits, the ensemble's first-order limit) as T grows; 0 below T0 (no extrapolation)."""
    return max(0.0, 1.0 - (base_temperature / temperature) ** ENSEMBLE_EXPONENT)


def profile_at(profiles: torch.Tensor, weight: float) -> torch.Tensor:
    """``(N, 2 S)`` tail profiles -> the ``(N, S)`` log-domain tail shape used at ensemble weight ``weight``."""
    num_senones = profiles.shape[-1] // 2
    return profiles[..., :num_senones] + (weight / ENSEMBLE_WEIGHT) * profiles[..., num_senones:]


def fit_basis(profiles: torch.Tensor, rank: int, rank_8bit: int | None = None, seed: int = 0) -> LowRankBasis:
    """PCA of ``(N, 2 S)`` tail profiles (:func:`tail_profile` of a sample of training frames).

    ``torch.svd_lowrank`` (randomised, Halko et al. 2011) with 4 power iterations instead of a
    full SVD: ``N x S`` is ~20000 x 8000 at the paper's scale, and only ``r << S`` components
    are kept. Seeded, so a refit gives the same basis. ``rank_8bit`` defaults to
    :func:`default_rank_8bit`.
    """
    rank_8bit = default_rank_8bit(rank) if rank_8bit is None else rank_8bit
    if profiles.dim() != 2 or len(profiles) <= rank:
        raise AsrKdError(f"fitting a rank-{rank} basis needs more than {rank} frames, got {tuple(profiles.shape)}")
    if not 0 <= rank_8bit <= rank:
        raise AsrKdError(f"rank_8bit must be in 0..{rank}, got {rank_8bit}")
    x = profiles.float()
    mean = x.mean(0)
    centred = x - mean
    total = float(centred.square().sum())
    if rank == 0:
        return LowRankBasis(mean, torch.zeros(0, x.shape[1]), torch.zeros(0), torch.zeros(0), 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # q = r + 16 (oversampling): enough for the leading r, exact when the profiles' rank is lower
        _, sing, v = torch.svd_lowrank(centred, q=min(rank + 16, *x.shape), niter=4)
    components = v[:, :rank].T.contiguous()
    explained = sing[:rank].square() / max(total, 1e-30)
    basis = LowRankBasis(mean, components, explained, torch.ones(rank), rank_8bit)
    spread = torch.quantile((centred @ components.T).abs(), STEP_QUANTILE, dim=0)
    return replace(basis, steps=(spread / basis.code_max()).clamp_min(1e-6))


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - e^x)`` for ``x <= 0``, accurate at both ends (Maechler 2012: ``log(-expm1(x))``
    near 0, ``log1p(-exp(x))`` below ``-log 2``)."""
    x = x.clamp(max=0.0)
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_tail_mass(log_probs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``log(1 - sum_top p)`` of ``(..., S)`` log-probabilities without the ``(..., k)`` ids, clamped at
    :data:`MIN_LOG_MASS`: a logsumexp over the tail itself, since ``1 - sum_top p`` in float32 loses
    a confident frame's tail (1e-7 and below at T = 1) to rounding."""
    tail = log_probs.float().scatter(-1, ids, -math.inf)
    return torch.logsumexp(tail, dim=-1).clamp(min=MIN_LOG_MASS)


@dataclass(frozen=True)
class EncodedFrames:
    """Store form of low-rank targets (what :func:`encode` returns), ``(..., width)`` arrays."""

    ids: torch.Tensor  # (..., k) int64
    top_log_probs: torch.Tensor  # (..., k) float32 at the base temperature
    coeffs: torch.Tensor  # (..., code_bytes) uint8 coefficient codes (LowRankBasis.encode)
    log_tail: torch.Tensor  # (..., len(temperatures)) float32


def encode(base_log_probs: torch.Tensor, served_log_probs: list[torch.Tensor], top_k: int, basis: LowRankBasis,
           asymptotic: torch.Tensor | None = None) -> EncodedFrames:
    """Low-rank targets of ``(..., S)`` teacher log-probabilities.

    Args:
        base_log_probs: the teacher's log soft targets at the base temperature ``T0``.
        served_log_probs: its log soft targets at each served temperature, in the order of the
            store's temperatures (the one at ``T0`` included), e.g. the paper's ensemble mean at T.
        top_k: ``k`` senones stored exactly (``k < S``).
        basis: the PCA basis of the tail profiles.
        asymptotic: an ensemble's ``log softmax(mean_m z_m / T0)`` (:func:`tail_profile`);
            ``None`` for one model.
    """
    num_senones = base_log_probs.shape[-1]
    if not 1 <= top_k < num_senones:
        raise AsrKdError(f"low-rank targets need 1 <= k < {num_senones} senones, got k={top_k}")
    top, ids = torch.topk(base_log_probs.float(), top_k, dim=-1, sorted=True)
    shape = base_log_probs.shape[:-1]
    profiles = tail_profile(base_log_probs, top_k, asymptotic).reshape(-1, 2 * num_senones)
    coeffs = basis.encode(basis.project(profiles)).reshape(*shape, basis.code_bytes)
    log_tail = torch.stack([log_tail_mass(lp, ids) for lp in served_log_probs], dim=-1)
    return EncodedFrames(ids, top, coeffs, log_tail)


@dataclass(frozen=True)
class LowRankTargets:
    """Re-temperable soft targets of ``N`` frames (module docstring).

    Attributes:
        ids: ``(N, k)`` integer senone ids of the top-k at ``base_temperature``.
        top_log_probs: ``(N, k)`` their log-probabilities at ``base_temperature``.
        coeffs: ``(N, code_bytes)`` uint8 codes of the tail-profile coefficients in ``basis``.
        log_tail: ``(N, len(temperatures))`` exact ``log R_T`` at each of ``temperatures``.
        temperatures: the temperatures of the ``log_tail`` columns (the ones this batch serves);
            ``base_temperature`` is one of them.
        base_temperature: ``T0``, the temperature of ``top_log_probs``.
        basis: the store's :class:`LowRankBasis`.
    """

    ids: torch.Tensor
    top_log_probs: torch.Tensor
    coeffs: torch.Tensor
    log_tail: torch.Tensor
    temperatures: tuple[float, ...]
    base_temperature: float
    basis: LowRankBasis

    def __post_init__(self) -> None:
        n, k = self.ids.shape
        if self.top_log_probs.shape != (n, k) or self.coeffs.shape != (n, self.basis.code_bytes) \
                or self.log_tail.shape != (n, len(self.temperatures)):
            raise ValueError(f"low-rank targets: ids {tuple(self.ids.shape)}, top log-probs "
                             f"{tuple(self.top_log_probs.shape)}, coefficient codes {tuple(self.coeffs.shape)} "
                             f"({self.basis.code_bytes} bytes), log tail {tuple(self.log_tail.shape)} for "
                             f"{self.temperatures}")
        if self.base_temperature not in self.temperatures:
            raise ValueError(f"base temperature {self.base_temperature} is not among {self.temperatures}")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def num_senones(self) -> int:
        return self.basis.num_senones

    def to(self, device: torch.device | str) -> LowRankTargets:
        """int64 ids and float32 values on ``device`` (stores keep int16 / fp16)."""
        return LowRankTargets(self.ids.to(device=device, dtype=torch.int64),
                              self.top_log_probs.to(device=device, dtype=torch.float32),
                              self.coeffs.to(device=device),
                              self.log_tail.to(device=device, dtype=torch.float32),
                              self.temperatures, self.base_temperature, self.basis.to(device))

    def column(self, temperature: float) -> int:
        """Index of ``temperature`` in :attr:`temperatures`; a clear error for one not served."""
        for i, t in enumerate(self.temperatures):
            if math.isclose(t, temperature, rel_tol=1e-6):
                return i
        raise AsrKdError(f"this low-rank teacher store serves T in {list(self.temperatures)}, not T={temperature}; "
                         "dump it again with that temperature in --temperature")

    def log_probs(self, temperature: float) -> torch.Tensor:
        """``(N, S)`` float32 log soft targets at a served ``temperature``."""
        profile = self.basis.tail_shape(self.basis.decode(self.coeffs),
                                        ensemble_weight(self.base_temperature, temperature))
        return retemper(self.ids, self.top_log_probs, profile, self.log_tail[:, self.column(self.base_temperature)],
                        self.log_tail[:, self.column(temperature)], self.base_temperature / temperature)

    def probs(self, temperature: float) -> torch.Tensor:
        """``(N, S)`` float32 soft targets at a served ``temperature`` (rows sum to 1)."""
        return self.log_probs(temperature).exp()


def retemper(ids: torch.Tensor, top_log_probs: torch.Tensor, profile: torch.Tensor, base_log_tail: torch.Tensor,
             log_tail: torch.Tensor, scale: float) -> torch.Tensor:
    """``(N, S)`` log soft targets at ``T = T0 / scale`` from the stored parts of ``N`` frames.

    Args:
        ids, top_log_probs: ``(N, k)`` the exact top-k at ``T0`` (most probable first).
        profile: ``(N, S)`` tail profile (any per-frame shift; its top-k entries are ignored).
        base_log_tail, log_tail: ``(N,)`` log tail mass at ``T0`` and at ``T``.
        scale: ``T0 / T``.
    """
    ids, top = ids.long(), top_log_probs.float()
    # the tail: top-k masked out, shifted to its exact mass at T0, clipped below the k-th value
    tail = profile.float().scatter(1, ids, -math.inf)
    tail = tail + (base_log_tail.float() - torch.logsumexp(tail, dim=-1))[:, None]
    tail = torch.minimum(tail, top[:, -1:])
    log_tail = log_tail.float()
    out = torch.log_softmax(tail * scale, dim=-1) + log_tail[:, None]
    top_part = torch.log_softmax(top * scale, dim=-1) + log1mexp(log_tail)[:, None]
    return out.scatter(1, ids, top_part)
