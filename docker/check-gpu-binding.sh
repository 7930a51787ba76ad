#!/bin/sh
# Build-time check for the GPU image: `npm ci` treats @tensorflow/tfjs-node-gpu as optional, so a
# failed libtensorflow download (or a failed addon build) is silently skipped and the image would
# only fail when a pod starts. This fails the image build instead.
# Usage: sh docker/check-gpu-binding.sh [APP_DIR]   (default: the current folder)
set -eu
pkg="${1:-.}/node_modules/@tensorflow/tfjs-node-gpu"

if [ ! -f "$pkg/package.json" ]; then
  echo "check-gpu-binding: @tensorflow/tfjs-node-gpu is not installed in ${1:-.}/node_modules (its install script failed: see the npm ci output above)" >&2
  exit 1
fi
# libtensorflow (GPU build), unpacked by the package's install script into deps/lib.
set -- "$pkg"/deps/lib/libtensorflow.so.*
if [ ! -e "$1" ]; then
  echo "check-gpu-binding: libtensorflow is missing from $pkg/deps/lib (the download failed)" >&2
  exit 1
fi
# The N-API addon that node-pre-gyp downloaded (or built) into lib/napi-v*/.
set -- "$pkg"/lib/napi-v*/tfjs_binding.node
if [ ! -e "$1" ]; then
  echo "check-gpu-binding: the addon tfjs_binding.node is missing from $pkg/lib/napi-v*/" >&2
  exit 1
fi
echo "check-gpu-binding: ok ($1)"
