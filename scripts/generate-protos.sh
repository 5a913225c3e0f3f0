#!/usr/bin/env bash
# Regenerates Sources/SextantWire/ from the .proto files in proto/.
#
# The generated Swift is committed; CI never runs this script. Run it after
# changing anything under proto/, then build and commit the result.
#
# Needs:
#   protoc                   (Debian: apt-get install -y protobuf-compiler;
#                             its bundled google/protobuf/*.proto are used)
#   protoc-gen-swift         from swift-protobuf (same version as Package.resolved)
#   protoc-gen-grpc-swift-2  from grpc-swift-protobuf (same version as Package.resolved)
#
# The plugins are taken from $PROTOC_GEN_SWIFT / $PROTOC_GEN_GRPC_SWIFT when
# set, otherwise from PATH.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
proto_dir="$repo_root/proto"
out_dir="$repo_root/Sources/SextantWire"

how_to_build_plugins() {
    cat >&2 <<'MSG'
Build the plugins in a scratch Swift package outside this repository, e.g. a
Package.swift (swift-tools-version 6.1) with the dependencies
    .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
and no targets, then in that package:
    swift build -c release --product protoc-gen-swift
    swift build -c release --product protoc-gen-grpc-swift-2
and point this script at the binaries:
    export PROTOC_GEN_SWIFT=<scratch>/.build/release/protoc-gen-swift
    export PROTOC_GEN_GRPC_SWIFT=<scratch>/.build/release/protoc-gen-grpc-swift-2
(or put .build/release on PATH). Use the versions pinned in Package.resolved.
MSG
}

find_plugin() { # $1 = env var value, $2 = executable name
    if [[ -n "$1" ]]; then
        if [[ -x "$1" ]]; then
            echo "$1"
            return 0
        fi
        echo "error: $1 is not an executable" >&2
        return 1
    fi
    command -v "$2" 2>/dev/null || return 1
}

if ! command -v protoc >/dev/null 2>&1; then
    echo "error: protoc not found (Debian/Ubuntu: apt-get install -y protobuf-compiler)" >&2
    exit 1
fi

if ! swift_plugin="$(find_plugin "${PROTOC_GEN_SWIFT:-}" protoc-gen-swift)"; then
    echo "error: protoc-gen-swift not found (set PROTOC_GEN_SWIFT or put it on PATH)" >&2
    how_to_build_plugins
    exit 1
fi
if ! grpc_plugin="$(find_plugin "${PROTOC_GEN_GRPC_SWIFT:-}" protoc-gen-grpc-swift-2)"; then
    echo "error: protoc-gen-grpc-swift-2 not found (set PROTOC_GEN_GRPC_SWIFT or put it on PATH)" >&2
    how_to_build_plugins
    exit 1
fi

# Options common to both plugins. UseAccessLevelOnImports makes the generated
# files say `package import SwiftProtobuf` etc., which the package-visible
# declarations need when the target enables InternalImportsByDefault.
common_opts="Visibility=Package,FileNaming=PathToUnderscores,UseAccessLevelOnImports=true"
swift_opts="$common_opts"
grpc_opts="$common_opts,Server=true,Client=true"

cd "$proto_dir"
mapfile -t protos < <(find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
if [[ ${#protos[@]} -eq 0 ]]; then
    echo "error: no .proto files under proto/" >&2
    exit 1
fi

# Remove stale generated files (from renamed or deleted .proto files).
mkdir -p "$out_dir"
find "$out_dir" -maxdepth 1 -type f \( -name '*.pb.swift' -o -name '*.grpc.swift' \) -delete

# Paths are relative to proto/ (-I .), so the generated files carry no
# machine-specific paths. google/protobuf/*.proto come from protoc's own
# include directory, which protoc adds by itself.
protoc \
    -I . \
    --plugin=protoc-gen-swift="$swift_plugin" \
    --swift_out="$swift_opts:$out_dir" \
    "${protos[@]}"

# gRPC stubs only for the files that declare a service (the plugin would
# otherwise write an empty "contained no services" file for every .proto).
mapfile -t service_protos < <(grep -l -E '^[[:space:]]*service[[:space:]]' "${protos[@]}")
if [[ ${#service_protos[@]} -gt 0 ]]; then
    protoc \
        -I . \
        --plugin=protoc-gen-grpc-swift-2="$grpc_plugin" \
        --grpc-swift-2_out="$grpc_opts:$out_dir" \
        "${service_protos[@]}"
fi

echo "generated $(find "$out_dir" -maxdepth 1 -type f -name '*.swift' | wc -l) files in Sources/SextantWire from ${#protos[@]} .proto files"
