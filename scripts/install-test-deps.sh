#!/usr/bin/env bash
# Installs the Debian packages the tests use (as root; skips what is already installed):
# - dataset-fashion-mnist: real data (IDX files) for the storage tests and the benchmarks;
# - swift, swift-*, memcached: a real S3-compatible server (OpenStack Swift + s3api) that the
#   tests start themselves (test/support/s3-server.ts); no MinIO server installs offline;
# - Go 1.19 with the protoc plugins and gRPC/protobuf libraries: `npm run generate` makes the Go
#   stubs and the tests build the Go client offline. golang-github-golang-protobuf-1-5-dev must be
#   named: otherwise apt satisfies grpc with the 1.3 package, whose clients panic at run time.
# - protoc, grpc_python_plugin, python3-grpcio, python3-protobuf: `npm run generate` makes the
#   Python stubs and the tests run the Python client (src/clients/python) with Debian's Python
#   (python3-pip, python3-venv: the test installs the package into a throwaway venv);
# - chromium: the HTML report is rendered headless in a test (driven by playwright-core).
set -euo pipefail
PACKAGES=(dataset-fashion-mnist swift swift-proxy swift-account swift-container swift-object memcached
  golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev
  golang-github-golang-protobuf-1-5-dev
  protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf python3-pip python3-venv chromium)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
