"""Train an ARPA n-gram LM from training transcripts with KenLM's ``lmplz`` (modified Kneser-Ney).

``lmplz`` is found through ``$ASR_KD_LMPLZ``, then ``tools/kenlm/bin/lmplz`` of this checkout
(built by ``tools/install_kenlm.sh``), then ``PATH``. Only training text may go in: the recipe
passes the training manifest's transcripts, never dev/test ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from asr_kd.utils.atomic import atomic_path
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("decoding.lm")
REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "tools" / "install_kenlm.sh"
LMPLZ_ENV = "ASR_KD_LMPLZ"


def find_lmplz() -> Path:
    """Path of the ``lmplz`` binary.

    Raises:
        AsrKdError: not found; the message names the install script.
    """
    from_env = os.environ.get(LMPLZ_ENV)
    if from_env:
        if not os.access(from_env, os.X_OK):
            raise AsrKdError(f"${LMPLZ_ENV}={from_env} is not an executable lmplz")
        return Path(from_env)
    local = REPO_ROOT / "tools" / "kenlm" / "bin" / "lmplz"
    if os.access(local, os.X_OK):
        return local
    on_path = shutil.which("lmplz")
    if on_path:
        return Path(on_path)
    raise AsrKdError(
        f"KenLM's lmplz was not found (${LMPLZ_ENV}, {local}, PATH); build it with {INSTALL_SCRIPT}"
    )


def train_arpa(
    transcripts: Iterable[str],
    out_path: str | os.PathLike,
    order: int = 3,
    lmplz: str | os.PathLike | None = None,
    memory: str = "1G",
) -> Path:
    """Write an order-``order`` ARPA LM trained on ``transcripts`` (one sentence per item).

    ``--discount_fallback`` lets lmplz estimate discounts on tiny corpora (where some count-of-counts
    are zero); on real corpora it changes nothing. Output is atomic.

    Raises:
        AsrKdError: no text, lmplz missing or failing (with its last error line).
    """
    lines = [" ".join(t.split()) for t in transcripts]
    lines = [line for line in lines if line]
    if not lines:
        raise AsrKdError(f"{out_path}: no transcripts to train an LM on")
    binary = Path(lmplz) if lmplz is not None else find_lmplz()
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="asr_kd_lm_") as tmp, atomic_path(out_path, suffix=".arpa") as arpa:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cmd = [str(binary), "-o", str(order), "--discount_fallback", "-S", memory, "-T", tmp,
               "--text", str(corpus), "--arpa", str(arpa)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise AsrKdError(f"{out_path}: lmplz failed (exit {proc.returncode}): {last}")
    log.info("lm: %d-gram from %d sentences -> %s", order, len(lines), out_path)
    return out_path
