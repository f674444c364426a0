#!/usr/bin/env bash
# Speed and memory benchmarks: the library, the CLI process and the bash
# one-liner baseline against the same loopback fleets in one run, plus the
# verify and Varnish throughput benchmarks. Prints `go test -bench` output.
#   bash ci/bench.sh            # all, 5 iterations each
#   bash ci/bench.sh Fleet50 3  # a pattern and an iteration count
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash ci/deps.sh
go test -run '^$' -bench "${1:-.}" -benchtime "${2:-5}x" ./internal/bench/ ./e2e/... 2>/dev/null || \
  go test -run '^$' -bench "${1:-.}" -benchtime "${2:-5}x" ./internal/bench/
