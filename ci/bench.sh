#!/usr/bin/env bash
# Speed and memory benchmarks, each beside its baseline from the same run,
# then one table of the figures that matter:
#   e2e:            the CLI (default flags) and the library vs wrk sending
#                   PURGE (1 thread, 16 connections per instance) on 3 real
#                   varnishd, 10,000 URLs, in the same rounds; CPU per purge.
#                   The CLI (default flags, 100,000 URLs x 3 varnishd, JSON
#                   to a file) vs wrk with a Lua script pipelining 64 PURGEs
#                   per batch on 4 connections per instance, in the same
#                   rounds, CPU per purge of both measured alike (user +
#                   system time of the processes; on loopback that includes
#                   the receiver's TCP work, for both).
#   internal/bench: 50 instances answering after 50 ms (library, CLI, and
#                   the bash dig + curl one-liner, sequential and xargs -P 64);
#                   1,000 instances; verify on 1,000; 100,000 URLs on 1, 3 and
#                   10 instances and 1,000,000 URLs on 1 through the CLI (peak
#                   RSS, time, linearity); an instance that answers only the
#                   first request of each connection (default flags).
#   purge/report:   writing 30,000 results as text, Markdown and JSON.
#   serve:          what the broadcaster adds to a 1-URL purge (beside the
#                   library's own purge phase), its rate with many jobs
#                   (beside the CLI on the same 3 varnishd), its peak RSS
#                   with 50 clients at once.
# Kept out of ci/test.sh: these are measurements, not pass/fail tests.
# Usage: bash ci/bench.sh [ITERATIONS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash ci/deps.sh
n="${1:-3}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
  go test -run '^$' -bench 'PurgeVsWrk$' -benchtime "${n}x" ./e2e/
  go test -run '^$' -bench 'PurgeVsWrkPipelined' -benchtime "${n}x" ./e2e/
  go test -run '^$' -bench 'Fleet50|Fleet1000|Verify1000|FirstRequestOnly' -benchtime "${n}x" ./internal/bench/
  go test -run '^$' -bench 'Memory' -benchtime 1x ./internal/bench/
  go test -run '^$' -bench 'Write30k' ./purge/report/
  # serve: latency over the library's purge phase (200 purges), throughput
  # beside the CLI, and peak RSS under 50 clients.
  go test -run '^$' -bench 'Serve/Latency' -benchtime 200x ./serve/
  go test -run '^$' -bench 'Serve/(Throughput|RSS)' -benchtime "${n}x" ./serve/
} 2>&1 | grep -v 'TLS handshake error' | tee "$out"

# metric BENCH UNIT: the value reported next to UNIT on BENCH's line.
metric() {
  awk -v b="$1" -v u="$2" '$1 ~ "^Benchmark" b "(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == u) { print $i; exit } }' "$out"
}
ms() { awk -v v="$(metric "$1" ns/op)" 'BEGIN { if (v != "") printf "%.1f ms", v / 1e6; else print "-" }'; }

echo
echo "== Figures (this run, $(nproc) cores)"
printf '%-52s %-26s %s\n' "what" "cdnpurge" "baseline (same run)"
printf '%-52s %-26s %s\n' "10,000 URLs x 3 varnishd, CLI with default flags" \
  "$(metric PurgeVsWrk cli-purges/s) purges/s" "wrk: $(metric PurgeVsWrk wrk-purges/s) purges/s"
printf '%-52s %-26s %s\n' "  CLI / wrk, library / wrk" \
  "$(metric PurgeVsWrk cli/wrk) x, $(metric PurgeVsWrk library/wrk) x" "target: CLI at least 1.5 x"
printf '%-52s %-26s %s\n' "  CPU per purge (CLI process, user + system)" "$(metric PurgeVsWrk cli-cpu-us/purge) us" ""
printf '%-52s %-26s %s\n' "100,000 URLs x 3 varnishd, CLI with default flags" \
  "$(metric PurgeVsWrkPipelined cli-purges/s) purges/s" "wrk pipelining 64: $(metric PurgeVsWrkPipelined wrk-pipelined-purges/s) purges/s"
printf '%-52s %-26s %s\n' "  CLI / wrk pipelining 64 (JSON report to a file)" \
  "$(metric PurgeVsWrkPipelined cli/wrk-pipelined) x" "target: at least 0.85 x"
printf '%-52s %-26s %s\n' "  CPU per purge, user + system (CLI / wrk)" \
  "$(metric PurgeVsWrkPipelined cli-cpu-us/purge) us" "wrk: $(metric PurgeVsWrkPipelined wrk-cpu-us/purge) us; ratio $(metric PurgeVsWrkPipelined cli-cpu/wrk-cpu) (target: at most 1.5)"
printf '%-52s %-26s %s\n' "1,000,000 URLs x 1 instance, JSON to a file" \
  "$(metric Memory/1000000x1 peak-RSS-MiB) MiB peak RSS" "target: under 128 MiB"
printf '%-52s %-26s %s\n' "64 URLs, instance answering 1 request a connection" \
  "$(metric FirstRequestOnly s/run) s" "target: under 30 s (default flags)"
printf '%-52s %-26s %s\n' "1,000,000 purges (100,000 URLs x 10), JSON to a file" \
  "$(metric Memory/100000x10 peak-RSS-MiB) MiB peak RSS" "target: under 128 MiB"
printf '%-52s %-26s %s\n' "  time of 1,000,000 purges / time of 100,000" "$(metric Memory/100000x10 time-vs-100k) x" "target: at most 10 x"
printf '%-52s %-26s %s\n' "300,000 purges (100,000 URLs x 3), JSON to a file" "$(metric Memory/100000x3 peak-RSS-MiB) MiB peak RSS" "target: under 150 MiB"
printf '%-52s %-26s %s\n' "report of 30,000 results: text (per instance) / JSON" "$(ms Write30k/text) / $(ms Write30k/json)" "text, every row: $(ms Write30k/text-verbose)"
printf '%-52s %-26s %s\n' "50 instances answering after 50 ms, library" "$(metric Fleet50/library ms/op) ms" \
  "bash dig+curl: $(metric Fleet50/bash-sequential ms/op) ms; xargs -P 64: $(metric Fleet50/bash-xargs-P64 ms/op) ms"
printf '%-52s %-26s %s\n' "50 instances answering after 50 ms, CLI process" "$(metric Fleet50/cli ms/op) ms" "target: within 100 ms (library: 75 ms)"
printf '%-52s %-26s %s\n' "1,000 instances answering after 50 ms, library" "$(metric Fleet1000 ms/op) ms" "target: within 150 ms"
printf '%-52s %-26s %s\n' "verify 1 URL on 1,000 instances" "$(metric Verify1000 ms/op) ms" "$(metric Verify1000 bytes-read/instance) bytes read per instance"
printf '%-52s %-26s %s\n' "serve: 1-URL purge on 3 varnishd, added to the purge" "$(metric Serve/Latency added-ms) ms (median)" \
  "purge phase: $(metric Serve/Latency purge-phase-ms) ms; target: under 5 ms"
printf '%-52s %-26s %s\n' "serve: 10,000 URLs as 100 jobs, 16 clients, journal" "$(metric Serve/Throughput serve-purges/s) purges/s" \
  "CLI: $(metric Serve/Throughput cli-purges/s) purges/s; serve/CLI $(metric Serve/Throughput serve/cli) x (target 0.8)"
printf '%-52s %-26s %s\n' "  CPU per purge, serve / CLI" "$(metric Serve/Throughput serve-cpu-us/purge) us" "CLI: $(metric Serve/Throughput cli-cpu-us/purge) us"
printf '%-52s %-26s %s\n' "serve: peak RSS, 50 clients x 100 URLs at once" "$(metric Serve/RSS peak-RSS-MiB) MiB" "target: under 64 MiB"
