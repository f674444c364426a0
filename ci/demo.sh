#!/usr/bin/env bash
# The demo from the README: installs varnish if missing (ci/deps.sh), then
# runs `cdnpurge demo` on a local 3-instance fleet. Extra arguments go to the
# demo, e.g. `bash ci/demo.sh --keep`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash ci/deps.sh
exec go run ./cmd/cdnpurge demo "$@"
