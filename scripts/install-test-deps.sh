#!/usr/bin/env bash
# Installs the Debian packages the tests use (as root; skips what is already installed):
# - dataset-fashion-mnist: real data (IDX files) for the storage tests and the benchmarks;
# - swift, swift-*, memcached: a real S3-compatible server (OpenStack Swift + s3api) that the
#   tests start themselves (test/support/s3-server.ts); no MinIO server installs offline.
set -euo pipefail
PACKAGES=(dataset-fashion-mnist swift swift-proxy swift-account swift-container swift-object memcached)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
