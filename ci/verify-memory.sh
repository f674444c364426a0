#!/usr/bin/env bash
# verify --wait's memory while it waits: URLS x INSTANCES checks that never
# match (ci/neverwarm answers every one with a miss), asked again every
# INTERVAL for WAIT, by the CLI built from this checkout; prints the peak
# RSS, the rounds and whether it stays under LIMIT_MIB. With a git ref as the
# first argument, the CLI built from that ref is measured the same way in
# the same run, first, as the baseline.
#
#   bash ci/verify-memory.sh             # 500 URLs x 50 instances for 2m, under 64 MiB
#   bash ci/verify-memory.sh main~10     # ... and the CLI of main~10 beside it
#   WAIT=30s URLS=100 bash ci/verify-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
URLS=${URLS:-500}
INSTANCES=${INSTANCES:-50}
WAIT=${WAIT:-2m}
INTERVAL=${INTERVAL:-100ms}
LIMIT_MIB=${LIMIT_MIB:-64}
baseline=${1:-}

tmp=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/cdnpurge" ./cmd/cdnpurge
go build -o "$tmp/neverwarm" ./ci/neverwarm
if [ -n "$baseline" ]; then
  mkdir "$tmp/base"
  git archive "$baseline" | tar -x -C "$tmp/base"
  (cd "$tmp/base" && go build -o "$tmp/cdnpurge-base" ./cmd/cdnpurge)
fi

"$tmp/neverwarm" -n "$INSTANCES" > "$tmp/instances" &
server=$!
for _ in $(seq 100); do
  [ "$(wc -l < "$tmp/instances")" -ge "$INSTANCES" ] && break
  sleep 0.1
done
[ "$(wc -l < "$tmp/instances")" -ge "$INSTANCES" ] || { echo "neverwarm did not start" >&2; exit 1; }
args=()
while read -r a; do args+=(--instance "$a"); done < "$tmp/instances"
for i in $(seq "$URLS"); do echo "https://memory.example/page/$i"; done > "$tmp/urls"

rss=0
measure() { # name binary: sets rss
  local out="$tmp/$1.json" rounds
  /usr/bin/time -f %M -o "$tmp/$1.rss" "$2" verify --urls-file "$tmp/urls" "${args[@]}" \
    --expect hit --wait "$WAIT" --interval "$INTERVAL" --format json > "$out" 2>/dev/null || true
  rss=$(( $(tail -1 "$tmp/$1.rss") / 1024 ))
  rounds=$(grep -o '"rounds": *[0-9]*' "$out" | head -1 | tr -dc '0-9')
  printf '%-9s %s URLs x %s instances, --wait %s --interval %s: %s rounds, peak RSS %s MiB\n' \
    "$1" "$URLS" "$INSTANCES" "$WAIT" "$INTERVAL" "${rounds:-?}" "$rss"
}
if [ -n "$baseline" ]; then
  measure baseline "$tmp/cdnpurge-base"
fi
measure current "$tmp/cdnpurge"
if [ "$rss" -ge "$LIMIT_MIB" ]; then
  echo "FAILED: peak RSS $rss MiB is not under $LIMIT_MIB MiB" >&2
  exit 1
fi
echo "ok: under $LIMIT_MIB MiB"
