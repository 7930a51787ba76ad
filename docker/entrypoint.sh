#!/bin/sh
# Container entry point: runs the memometer CLI (dist/clients/main.js) with the container's
# arguments; the image's default CMD is `serve`. `exec` makes node PID 1's only process, so
# SIGTERM from the kubelet reaches the server itself: it reports NOT_SERVING, gives running
# measurements MEMOMETER_SHUTDOWN_GRACE_SECONDS, then stops.
set -eu

# The app folder: the one above this script (/app in the images).
app_dir=${MEMOMETER_APP_DIR:-$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)}

if [ ! -f "$app_dir/dist/clients/main.js" ]; then
  echo "entrypoint: $app_dir/dist/clients/main.js is missing (was the image built with 'npm run build'?)" >&2
  exit 127
fi

exec node "$app_dir/dist/clients/main.js" "$@"
