#!/usr/bin/env bash
# Builds the example Go client (src/clients/go/cmd/memometer-measure) offline, in GOPATH mode,
# against Debian's Go packages in /usr/share/gocode:
#   scripts/build-go-client.sh [OUTPUT]   (default .tmp/go/bin/memometer-measure)
# The GOPATH ($GP, under .tmp/go) holds symlinks: $GP/src/memometer.dev/gen/go -> src/gen/go
# and $GP/src/memometer.dev/clients/go -> src/clients/go.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=${1:-.tmp/go/bin/memometer-measure}
case $out in /*) ;; *) out=$root/$out ;; esac

APT_PACKAGES="golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev"
GOCODE=/usr/share/gocode
missing() {
  echo "build-go-client: $1" >&2
  echo "  install: apt-get install --no-install-recommends $APT_PACKAGES" >&2
  echo "  (name golang-github-golang-protobuf-1-5-dev explicitly: apt otherwise picks" >&2
  echo "   golang-github-golang-protobuf-1-3-dev, and the client panics at run time)" >&2
  exit 1
}
command -v go >/dev/null 2>&1 || missing "go is not installed"
for pkg in google.golang.org/grpc google.golang.org/protobuf google.golang.org/genproto/googleapis/rpc/code; do
  [ -d "$GOCODE/src/$pkg" ] || missing "the Go package $pkg is missing from $GOCODE"
done
# golang/protobuf 1.3 (golang-github-golang-protobuf-1-3-dev, golang-goprotobuf-dev) predates
# the APIv2 shim: grpc builds against it but fails at run time.
[ -f "$GOCODE/src/github.com/golang/protobuf/proto/registry.go" ] ||
  missing "github.com/golang/protobuf in $GOCODE is not 1.4+ (golang-github-golang-protobuf-1-3-dev installed?)"

GP=$root/.tmp/go/gopath
mkdir -p "$GP/src/memometer.dev/gen" "$GP/src/memometer.dev/clients" "$(dirname "$out")"
ln -sfn "$root/src/gen/go" "$GP/src/memometer.dev/gen/go"
ln -sfn "$root/src/clients/go" "$GP/src/memometer.dev/clients/go"

GO111MODULE=off GOPATH="$GP:$GOCODE" GOFLAGS= GOCACHE="${GOCACHE:-$root/.tmp/go/cache}" \
  go build -o "$out" memometer.dev/clients/go/cmd/memometer-measure
echo "built $out"
