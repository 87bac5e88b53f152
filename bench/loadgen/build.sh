#!/usr/bin/env bash
# Build the native closed-loop gRPC load generator: bench/loadgen/build/loadgen.
# Installs the Debian gRPC/protobuf C++ packages when missing (needs root),
# regenerates the C++ stubs from protos/ and recompiles only when a source is newer.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PROTO_ROOT="$REPO/protos"
PROTO_REL="sasrec/serving/v1/recommender.proto"
PROTO="$PROTO_ROOT/$PROTO_REL"
SRC="$HERE/loadgen.cc"
OUT="$HERE/build"
GEN="$OUT/gen"
BIN="$OUT/loadgen"
STEM="$GEN/sasrec/serving/v1/recommender"

if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists grpc++ protobuf \
    || ! command -v protoc >/dev/null 2>&1 || ! command -v grpc_cpp_plugin >/dev/null 2>&1 \
    || ! command -v g++ >/dev/null 2>&1; then
  echo "build.sh: installing gRPC C++ development packages" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev pkg-config g++ >&2
fi

mkdir -p "$GEN"

# Regenerate the stubs when the .proto (or this script) is newer than them.
if [ ! -f "$STEM.grpc.pb.cc" ] || [ "$PROTO" -nt "$STEM.grpc.pb.cc" ] \
    || [ "${BASH_SOURCE[0]}" -nt "$STEM.grpc.pb.cc" ]; then
  protoc -I "$PROTO_ROOT" --cpp_out="$GEN" --grpc_out="$GEN" \
    --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" "$PROTO"
fi

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
