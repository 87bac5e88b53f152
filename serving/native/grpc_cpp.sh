# Shared by serving/native/build.sh and bench/loadgen/build.sh (source it).
#   ensure_grpc_cpp        installs Debian's gRPC/protobuf C++ packages when missing
#                          (as root or with password-less sudo; else returns 1)
#   generate_stubs GEN     C++ stubs of protos/ into GEN when the .proto is newer
GRPC_CPP_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GRPC_CPP_PROTO_ROOT="$GRPC_CPP_REPO/protos"
GRPC_CPP_PROTO="$GRPC_CPP_PROTO_ROOT/sasrec/serving/v1/recommender.proto"

ensure_grpc_cpp() {
  # Returns 1 (after saying why) when the packages are missing and this user
  # cannot install them: no root and no password-less sudo.
  if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists grpc++ protobuf \
      || ! command -v protoc >/dev/null 2>&1 || ! command -v grpc_cpp_plugin >/dev/null 2>&1 \
      || ! command -v g++ >/dev/null 2>&1; then
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
        echo "gRPC C++ development packages missing (libgrpc++-dev protobuf-compiler-grpc" \
          "protobuf-compiler libprotobuf-dev pkg-config g++) and installing them needs root" >&2
        return 1
      fi
      sudo="sudo -n"
    fi
    echo "installing gRPC C++ development packages" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev pkg-config g++ >&2
  fi
}

generate_stubs() {
  local gen="$1"
  local stem="$gen/sasrec/serving/v1/recommender"
  mkdir -p "$gen"
  if [ ! -f "$stem.grpc.pb.cc" ] || [ "$GRPC_CPP_PROTO" -nt "$stem.grpc.pb.cc" ]; then
    protoc -I "$GRPC_CPP_PROTO_ROOT" --cpp_out="$gen" --grpc_out="$gen" \
      --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" "$GRPC_CPP_PROTO"
  fi
}
