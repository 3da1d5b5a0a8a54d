#!/usr/bin/env bash
# Build KenLM's `lmplz` (ARPA n-gram training) into tools/kenlm/ from the PyPI `kenlm` source package.
#
# Idempotent: does nothing when tools/kenlm/bin/lmplz already runs. Needs apt (root) for the
# build dependencies and a package registry for the source; compiles in a minute or two.
# Usage: tools/install_kenlm.sh            (prints the path of lmplz on success; JOBS=N compile jobs)
#        ASR_KD_LMPLZ=<that path> asr-kd ... (or leave it: asr_kd finds tools/kenlm/bin/lmplz itself)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kenlm"
lmplz="$root/bin/lmplz"
# `lmplz --help` exits 1, so check that it prints its usage instead.
runs() { [[ -x "$1" ]] && [[ "$("$1" --help 2>&1)" == *Kneser-Ney* ]]; }
if runs "$lmplz"; then
    echo "$lmplz"
    exit 0
fi

apt_packages=(cmake g++ make libboost-program-options-dev libboost-system-dev libboost-thread-dev
              libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
fi

repo="$(dirname "$(dirname "$root")")"
python="${PYTHON:-$([[ -x "$repo/.venv/bin/python" ]] && echo "$repo/.venv/bin/python" || echo python3)}"
work="$root/src"
mkdir -p "$work"
if ! compgen -G "$work/kenlm-*/CMakeLists.txt" >/dev/null; then
    # the source archive only (--no-binary kenlm, not :all:, which would also build pip's own build
    # dependencies from source); pip reads its metadata in an isolated build environment
    "$python" -m pip download --no-binary kenlm --no-deps -d "$work" "kenlm>=0.2"
    tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
fi
src="$(dirname "$(compgen -G "$work/kenlm-*/CMakeLists.txt" | head -n 1)")"

cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 >/dev/null
cmake --build "$work/build" --target lmplz build_binary -j "${JOBS:-$(nproc)}"
mkdir -p "$root/bin"
cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$root/bin/"
runs "$lmplz" || { echo "install_kenlm.sh: built $lmplz does not run" >&2; exit 1; }
echo "$lmplz"
