#!/usr/bin/env bash
# Speed and memory benchmarks, each beside its baseline in the same run:
#   internal/bench: the library and CLI vs the bash one-liner (dig + curl) on
#                   loopback fleets of 50 and 1000 instances; 1000 URLs x 10
#                   instances (purges/s, connections, peak RSS); verify on 1000.
#   e2e:            cdnpurge vs wrk PURGE throughput on 3 real varnishd.
# Usage: bash ci/bench.sh [PATTERN] [ITERATIONS]   (defaults: all, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash ci/deps.sh
go test -run '^$' -bench "${1:-.}" -benchtime "${2:-5}x" ./internal/bench/ ./e2e/ ./purge/
