#!/usr/bin/env bash
# Build the compiled scoring kernel: sasrec/engines/_scoring_kernel*.so, imported as
# sasrec.engines._scoring_kernel (the "compiled" engine, which `auto` serves with).
# Needs only g++ and pybind11 (a pip package, installed here when missing): no
# root, no system package. Recompiles only when a source is newer than the library.
# Without g++ it says so and builds nothing: the engine falls back to NumPy
# (`auto` picks `numpy`) and the kernel's tests skip.
#   usage: sasrec/engines/kernel/build.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
PY="${1:-$REPO/.venv/bin/python}"
CXX="${CXX:-g++}"
SRC="$HERE/scoring_kernel.cc"

SUFFIX="$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
LIB="$REPO/sasrec/engines/_scoring_kernel$SUFFIX"

if [ -f "$LIB" ] && [ ! "$SRC" -nt "$LIB" ] && [ ! "${BASH_SOURCE[0]}" -nt "$LIB" ]; then
  echo "build.sh: $LIB is up to date" >&2
  exit 0
fi
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "build.sh: $CXX not found: the compiled scoring kernel is NOT built;" \
    "serving uses the numpy engine (install g++ and rerun make setup)" >&2
  exit 0
fi
"$PY" -c "import pybind11" 2>/dev/null || "$PY" -m pip install --quiet "pybind11>=2.12"
# Plain -O3 for the x86-64 baseline (never -march=native: the library may run on
# another machine); the hot loops carry target_clones, so AVX2+FMA and AVX-512
# copies are also built and picked at load time (-Wno-psabi: those copies pass
# 64-byte vectors only between functions of one instruction set).
# shellcheck disable=SC2046  # pybind11's output is meant to be word-split
if "$CXX" -O3 -std=c++17 -shared -fPIC -fvisibility=hidden -Wno-psabi \
  $("$PY" -m pybind11 --includes) -o "$LIB.tmp" "$SRC"; then
  mv -f "$LIB.tmp" "$LIB"
  echo "build.sh: built $LIB" >&2
else
  rm -f "$LIB.tmp"
  echo "build.sh: compiling the scoring kernel FAILED (above); serving uses the numpy engine" >&2
  exit 0
fi
