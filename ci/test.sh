#!/usr/bin/env bash
# The whole test suite, as the README says: installs what it needs (ci/deps.sh),
# checks formatting, go vet and go mod tidy, and runs every test with the race
# detector. End-to-end tests against real varnishd are required here, not skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash ci/deps.sh
mapfile -t gofiles < <(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')
unformatted=$(gofmt -l "${gofiles[@]}")
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted" >&2; exit 1; fi
go vet ./...
if ! go mod tidy -diff >/dev/null 2>&1; then
  echo "go mod tidy would change go.mod or go.sum:" >&2
  go mod tidy -diff >&2 || true
  exit 1
fi
CDNPURGE_E2E="${CDNPURGE_E2E:-require}" go test -race -count=1 "$@" ./...
# The end-to-end suite once more on the other layout, when the first run
# could use network namespaces (root outside a container): this one uses
# 127.0.x.y addresses.
if [ -z "${CDNPURGE_E2E_MODE:-}" ] && go run ./fleet/cmd/fleet-containers netns 2>/dev/null; then
  CDNPURGE_E2E="${CDNPURGE_E2E:-require}" CDNPURGE_E2E_MODE=loopback go test -count=1 "$@" ./e2e/
fi
