#!/usr/bin/env bash
# Installs the project's pinned Go tools into ./bin (or $TOOLS_BIN).
# A tool is rebuilt only when its pinned version changes; the Go build cache
# makes a reinstall on a machine that built it before take seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TOOLS_BIN:-$root/bin}
mkdir -p "$bin"

# name  package@version
tools=(
  "buf                 github.com/bufbuild/buf/cmd/buf@v1.75.0"
  "protoc-gen-go       google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
  "protoc-gen-go-grpc  google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
  "protoc-gen-go-vtproto github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.1-0.20240319094008-0393e58bdf10"
  "grpcurl             github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4"
  "ghz                 github.com/bojand/ghz/cmd/ghz@v0.120.0"
  "grpc-health-probe   github.com/grpc-ecosystem/grpc-health-probe@v0.4.62"
  "kustomize           sigs.k8s.io/kustomize/kustomize/v5@v5.8.2"
  "staticcheck         honnef.co/go/tools/cmd/staticcheck@v0.7.0"
)

only=("$@")
for t in "${tools[@]}"; do
  read -r name pkg <<<"$t"
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $name " ]]; then continue; fi
  stamp="$bin/.$name.version"
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pkg" ]; then continue; fi
  echo "tools: installing $pkg" >&2
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install "$pkg"
  echo "$pkg" >"$stamp"
done
