#!/usr/bin/env bash
# Build the compiled scoring kernel in place: sasrec/engines/_scoring_kernel*.so,
# imported as sasrec.engines._scoring_kernel (the "compiled" engine, which `auto`
# serves with). The build definition is setup.py's (the same one `pip install .`
# and `pip wheel .` use); this runs its `build_ext --inplace`. Needs only a C++
# compiler (CXX, default g++) and pybind11 (a pip package, installed here when
# missing): no root, no system package. Recompiles only when a source is newer
# than the library. Without a compiler it says so and builds nothing: the engine
# falls back to NumPy (`auto` picks `numpy`) and the kernel's tests skip.
#   usage: sasrec/engines/kernel/build.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
PY="${1:-$REPO/.venv/bin/python}"

# pyproject.toml's [build-system] requires (a fresh venv's setuptools is too old to
# read pyproject.toml); tests/engines/test_kernel_build.py keeps the two lists equal.
REQUIRES=("setuptools>=77" "wheel" "pybind11>=2.12")
"$PY" -c "import pybind11, setuptools, wheel; assert int(setuptools.__version__.split('.')[0]) >= 77" \
  2>/dev/null || "$PY" -m pip install --quiet "${REQUIRES[@]}"
cd "$REPO"
# build_ext's temporary folder under build/ (git-ignored); setup.py prints the
# notices (built / up to date / not built and why) and never fails the build.
"$PY" setup.py --quiet build_ext --inplace
