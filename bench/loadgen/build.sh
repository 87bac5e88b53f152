#!/usr/bin/env bash
# Build the native closed-loop gRPC load generator: bench/loadgen/build/loadgen.
# Installs the Debian gRPC/protobuf C++ packages when missing (needs root),
# regenerates the C++ stubs from protos/ and recompiles only when a source is newer.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SRC="$HERE/loadgen.cc"
OUT="$HERE/build"
GEN="$OUT/gen"
BIN="$OUT/loadgen"
STEM="$GEN/sasrec/serving/v1/recommender"

# shellcheck source=../../serving/native/grpc_cpp.sh
source "$REPO/serving/native/grpc_cpp.sh"
ensure_grpc_cpp
generate_stubs "$GEN"

# Recompile when the binary is missing or older than any of its sources.
rebuild=0
if [ ! -x "$BIN" ]; then rebuild=1; fi
for f in "$SRC" "$STEM.pb.cc" "$STEM.pb.h" "$STEM.grpc.pb.cc" "$STEM.grpc.pb.h"; do
  if [ "$f" -nt "$BIN" ]; then rebuild=1; fi
done
if [ "$rebuild" -eq 1 ]; then
  # shellcheck disable=SC2046  # pkg-config output is meant to be word-split
  g++ -O2 -std=c++17 -I "$GEN" -o "$BIN.tmp" \
    "$SRC" "$STEM.pb.cc" "$STEM.grpc.pb.cc" \
    $(pkg-config --cflags --libs grpc++ protobuf) -lpthread
  mv -f "$BIN.tmp" "$BIN"
  echo "build.sh: built $BIN" >&2
else
  echo "build.sh: $BIN is up to date" >&2
fi
