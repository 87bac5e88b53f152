#!/usr/bin/env bash
# Build the native gRPC front end: serving/sasrec/serving/_native_frontend*.so, imported as
# sasrec.serving._native_frontend (`sasrec serve --frontend native`).
# Installs the Debian gRPC/protobuf C++ packages (as root or with sudo; without
# either, says so and builds nothing) and pybind11 when missing,
# generates the C++ stubs from protos/, recompiles only when a source is newer.
#   usage: serving/native/build.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=grpc_cpp.sh
source "$HERE/grpc_cpp.sh"
PY="${1:-$REPO/.venv/bin/python}"
SRC="$HERE/frontend.cc"
GEN="$HERE/build/gen"
STEM="$GEN/sasrec/serving/v1/recommender"
SUFFIX="$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
LIB="$REPO/serving/sasrec/serving/_native_frontend$SUFFIX"

if ! ensure_grpc_cpp; then
  # Not an error: the Python front end serves the same contract, and the
  # native front end's tests skip with this reason when the library is absent.
  echo "build.sh: native front end NOT built (see above); sasrec serve --frontend native" \
    "and its tests are unavailable until it is (as root: make native)" >&2
  exit 0
fi
"$PY" -c "import pybind11" 2>/dev/null || "$PY" -m pip install --quiet "pybind11>=2.12"
generate_stubs "$GEN"

rebuild=0
if [ ! -f "$LIB" ]; then rebuild=1; fi
for f in "$SRC" "$STEM.pb.cc" "$STEM.grpc.pb.cc" "${BASH_SOURCE[0]}"; do
  if [ "$f" -nt "$LIB" ]; then rebuild=1; fi
done
if [ "$rebuild" -eq 1 ]; then
  # shellcheck disable=SC2046  # pkg-config and pybind11 output is meant to be word-split
  g++ -O2 -std=c++17 -shared -fPIC -fvisibility=hidden -I "$GEN" \
    $("$PY" -m pybind11 --includes) -o "$LIB.tmp" \
    "$SRC" "$STEM.pb.cc" "$STEM.grpc.pb.cc" \
    $(pkg-config --cflags --libs grpc++ protobuf) -lpthread
  mv -f "$LIB.tmp" "$LIB"
  echo "build.sh: built $LIB" >&2
else
  echo "build.sh: $LIB is up to date" >&2
fi
