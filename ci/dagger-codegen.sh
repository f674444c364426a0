#!/usr/bin/env bash
# Regenerates the Dagger module's bindings (.dagger/dagger.gen.go,
# .dagger/internal/...) offline, with Dagger's real codegen at the engine
# version dagger.json names, and no engine:
#   1. build github.com/dagger/dagger/cmd/codegen from ci/tools (pinned in its go.mod);
#   2. turn that version's docs/docs-graphql/schema.graphqls into introspection
#      JSON (ci/tools/schema2introspection restores the @enumValue aliases);
#   3. run `codegen generate-module` on .dagger;
#   4. undo codegen's `go get -u`: it moves dependencies to whatever is newest
#      that day (OpenTelemetry to versions that do not build together), so the
#      committed go.mod/go.sum are restored, the OpenTelemetry set that
#      dagger.io/dagger works with is pinned, and `go mod tidy` adds only what
#      new generated code imports. The result is the same every day.
# With --check it fails when the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$PATH:/usr/local/go/bin"
version=$(sed -n 's/.*"engineVersion": *"\([^"]*\)".*/\1/p' dagger.json)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(
  cd ci/tools
  go build -o "$work/codegen" github.com/dagger/dagger/cmd/codegen
  dagger_dir=$(go list -m -f '{{.Dir}}' github.com/dagger/dagger)
  sdk_dir=$(go list -m -f '{{.Dir}}' dagger.io/dagger)
  for m in github.com/dagger/dagger dagger.io/dagger; do
    v=$(go list -m -f '{{.Version}}' "$m")
    [ "$v" = "$version" ] || { echo "ci/tools pins $m $v but dagger.json says $version" >&2; exit 1; }
  done
  go run ./schema2introspection -schema "$dagger_dir/docs/docs-graphql/schema.graphqls" \
    -sdk "$sdk_dir/dagger.gen.go" -version "$version" > "$work/introspection.json"
)

cd .dagger
[ -f go.mod ] && cp go.mod "$work/go.mod.before"
[ -f go.sum ] && cp go.sum "$work/go.sum.before"
"$work/codegen" generate-module --introspection-json-path "$work/introspection.json" \
  --module-source-path . --module-name cdnpurge --output . --lib-version "$version" >"$work/codegen.log" 2>&1 || {
  cat "$work/codegen.log" >&2; exit 1; }

if [ -f "$work/go.mod.before" ]; then
  cp "$work/go.mod.before" go.mod
  if [ -f "$work/go.sum.before" ]; then cp "$work/go.sum.before" go.sum; else rm -f go.sum; fi
fi
# codegen may add replace lines for OpenTelemetry log packages: drop them.
for r in $(go mod edit -json | sed -n 's/.*"Path": "\(go.opentelemetry.io\/otel[^"]*log[^"]*\)".*/\1/p' | sort -u); do
  go mod edit -dropreplace="$r" 2>/dev/null || true
done
go mod edit \
  -require=go.opentelemetry.io/otel@v1.43.0 \
  -require=go.opentelemetry.io/otel/trace@v1.43.0 \
  -require=go.opentelemetry.io/otel/metric@v1.43.0 \
  -require=go.opentelemetry.io/otel/sdk@v1.43.0 \
  -require=go.opentelemetry.io/otel/sdk/metric@v1.43.0 \
  -require=go.opentelemetry.io/otel/log@v0.17.0 \
  -require=go.opentelemetry.io/otel/sdk/log@v0.17.0
go mod tidy
go build ./...

if [ "${1:-}" = "--check" ]; then
  cd "$root"
  untracked=$(git ls-files --others --exclude-standard -- .dagger)
  if ! git diff --quiet -- .dagger || [ -n "$untracked" ]; then
    echo "The Dagger bindings are out of date; run 'bash ci/dagger-codegen.sh' and commit:" >&2
    git diff --stat -- .dagger >&2
    [ -z "$untracked" ] || echo "new files: $untracked" >&2
    exit 1
  fi
  echo "Dagger bindings are up to date ($version)."
fi
