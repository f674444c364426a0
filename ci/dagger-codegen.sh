#!/usr/bin/env bash
# Regenerates the Dagger module's bindings (.dagger/dagger.gen.go,
# .dagger/internal/..., and whatever codegen does to .dagger/go.mod and go.sum)
# offline, exactly as the engine regenerates them when it loads the module, and
# keeps the result as it is: nothing is repaired afterwards. If the result does
# not build, the committed module needs fixing, not the output.
#
#   bash ci/dagger-codegen.sh            regenerate in this checkout
#   bash ci/dagger-codegen.sh --check    ... and fail on any diff against git
#
# How (what the engine does and where that is in Dagger's source is written in
# ci/dagger-engine-check.sh, which also builds the result):
#   1. build github.com/dagger/dagger/cmd/codegen from ci/tools, which must pin
#      github.com/dagger/dagger and dagger.io/dagger at dagger.json's
#      engineVersion;
#   2. turn that version's docs/docs-graphql/schema.graphqls into introspection
#      JSON (ci/tools/schema2introspection);
#   3. remove <source>/dagger.gen.go and run, in <source>, with the Go
#      environment the engine's Go SDK container has (golang:1.26-alpine:
#      no GOFLAGS, no GOWORK, GOTOOLCHAIN=auto, GOPRIVATE from
#      sdk.config.goprivate if set):
#        codegen generate-module --output <context> --module-source-path <context>/<source>
#          --module-name <name> --introspection-json-path <json> --lib-version <engineVersion>
#      codegen itself runs `go mod edit -replace` for the SDK's replaces,
#      `go get dagger.io/dagger@<lib-version>` and `go mod tidy`, twice.
#
# Internal options, for ci/dagger-engine-check.sh:
#   --context DIR     regenerate DIR/<source> (a copy of the module's context)
#                     instead of this checkout, reading DIR/dagger.json
#   --lib-version V   pass V to codegen instead of engineVersion (the engine
#                     passes a dagger-go-sdk commit; see the engine check)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$PATH:/usr/local/go/bin"

check=false
context=$root
lib_version=
while [ $# -gt 0 ]; do
  case $1 in
  --check) check=true ;;
  --context) context=$(cd "$2" && pwd); shift ;;
  --lib-version) lib_version=$2; shift ;;
  *) echo "usage: $0 [--check] [--context DIR] [--lib-version V]" >&2; exit 2 ;;
  esac
  shift
done

command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
config=$context/dagger.json
version=$(jq -er .engineVersion "$config")
name=$(jq -er .name "$config")
source=$(jq -er '.source // "."' "$config")
sdk=$(jq -r 'if (.sdk | type) == "object" then .sdk.source else .sdk end' "$config")
[ "$sdk" = go ] || { echo "$config: SDK $sdk; this script knows only the Go SDK's codegen" >&2; exit 1; }
if $check && [ "$context" != "$root" ]; then echo "--check compares this checkout with git; not with --context" >&2; exit 2; fi
lib_version=${lib_version:-$version}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(
  cd ci/tools
  for m in github.com/dagger/dagger dagger.io/dagger; do
    v=$(go list -m -f '{{.Version}}' "$m")
    [ "$v" = "$version" ] || { echo "ci/tools pins $m $v but $config says $version" >&2; exit 1; }
  done
  go build -o "$work/codegen" github.com/dagger/dagger/cmd/codegen
  go mod download github.com/dagger/dagger dagger.io/dagger # go list -m gives no Dir before
  dagger_dir=$(go list -m -f '{{.Dir}}' github.com/dagger/dagger)
  sdk_dir=$(go list -m -f '{{.Dir}}' dagger.io/dagger)
  go run ./schema2introspection -schema "$dagger_dir/docs/docs-graphql/schema.graphqls" \
    -sdk "$sdk_dir/dagger.gen.go" -version "$version" > "$work/introspection.json"
)

# dagger.json's sdk.config.goprivate becomes GOPRIVATE in the engine's container.
goprivate=$(jq -r 'if (.sdk | type) == "object" then .sdk.config.goprivate // "" else "" end' "$config")
if [ -n "$goprivate" ]; then export GOPRIVATE=$goprivate; fi

cd "$context/$source"
rm -f dagger.gen.go
if ! env -u GOFLAGS -u GOWORK GOTOOLCHAIN=auto "$work/codegen" generate-module \
  --output "$context" --module-source-path "$context/$source" --module-name "$name" \
  --introspection-json-path "$work/introspection.json" --lib-version "$lib_version" >"$work/codegen.log" 2>&1; then
  cat "$work/codegen.log" >&2
  echo "Dagger's codegen ($version) failed on $context/$source; the log is above." >&2
  exit 1
fi

if $check; then
  cd "$root"
  untracked=$(git ls-files --others --exclude-standard -- "$source")
  if ! git diff --quiet -- "$source" || [ -n "$untracked" ]; then
    echo "The Dagger module is not what codegen $version makes of it; run 'bash ci/dagger-codegen.sh' and commit:" >&2
    git diff --stat -- "$source" >&2
    git --no-pager diff -- "$source/go.mod" >&2
    [ -z "$untracked" ] || echo "new files: $untracked" >&2
    exit 1
  fi
  echo "Dagger bindings, go.mod and go.sum are what codegen $version makes of them."
fi
