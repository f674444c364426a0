#!/usr/bin/env bash
# The whole suite (ci/test.sh) N times in a row beside two busy loops, as a
# loaded 2-core CI machine would run it: a flaky test shows here. Prints one
# line a run and exits 1 when any run failed; each run's log is kept.
# Usage: bash ci/stress.sh [RUNS]   (default 10)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
runs="${1:-10}"
logs=$(mktemp -d)
( while :; do :; done ) & b1=$!
( while :; do :; done ) & b2=$!
trap 'kill "$b1" "$b2" 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if bash ci/test.sh >"$logs/run-$i.log" 2>&1; then r=pass; else r=FAIL; failed=$((failed + 1)); fi
  echo "run $i: $r in $(($(date +%s) - start))s (log: $logs/run-$i.log)"
done
echo "$((runs - failed)) of $runs runs passed"
[ "$failed" -eq 0 ]
