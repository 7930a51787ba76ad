#!/usr/bin/env bash
# Runs a command with the Node.js version pinned in .node-version, fetched once from the npm
# registry (the per-platform `node-linux-<arch>` package: a plain binary, no install script) into
# .tools/, so a machine with any Node and npm (Debian's Node 20 here) needs nothing else:
#   scripts/with-node.sh npm ci
#   scripts/with-node.sh npm test
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(tr -d '[:space:]' < "$root/.node-version")"
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "with-node.sh: no Node.js package for $(uname -m)" >&2; exit 1 ;;
esac
package="node-linux-$arch"
prefix="$root/.tools/node-$version-$arch"
bin="$prefix/node_modules/$package/bin"
if [ ! -x "$bin/node" ]; then
  echo "with-node.sh: fetching Node.js $version ($package) from the npm registry" >&2
  # Into a private folder first, then renamed into place: an interrupted download or a concurrent
  # call never leaves a half-written .tools/node-* that later calls would take as installed.
  tmp="$(mktemp -d "$root/.tools/.node-$version-$arch.XXXXXX" 2>/dev/null || { mkdir -p "$root/.tools" && mktemp -d "$root/.tools/.node-$version-$arch.XXXXXX"; })"
  trap 'rm -rf "$tmp"' EXIT
  npm install --prefix "$tmp" --no-save --no-audit --no-fund --no-package-lock "$package@$version" >&2
  got="$("$tmp/node_modules/$package/bin/node" --version)"
  if [ "$got" != "v$version" ]; then
    echo "with-node.sh: $package@$version runs as $got, expected v$version" >&2
    exit 1
  fi
  mv -T "$tmp" "$prefix" 2>/dev/null || [ -x "$bin/node" ] # another call may have won the race
  rm -rf "$tmp"
  trap - EXIT
fi
export PATH="$bin:$PATH"
exec "$@"
