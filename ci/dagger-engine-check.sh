#!/usr/bin/env bash
# Does the Dagger module load on the engine dagger.json names? No engine runs
# here, so this does, offline, what the engine does when it loads the module,
# and fails where the engine would:
#   1. copy what the engine receives into a fresh directory: dagger.json, the
#      module source and the paths dagger.json's "include" lists, less what
#      .gitignore ignores (a package the module imports but dagger.json does not
#      include is missing here as it is on the engine);
#   2. regenerate there with Dagger's codegen as the engine does
#      (ci/dagger-codegen.sh --context), keeping whatever it does to go.mod;
#   3. build as the engine does (go build -ldflags "-s -w" -o runtime .), then
#      go build ./... and go vet ./... (vet compiles the tests too);
#   4. check that the go line codegen leaves in go.mod is one the engine's Go
#      accepts.
#
#   bash ci/dagger-engine-check.sh
#
# To see it fail on an older setup, run it from a checkout of that setup: it
# takes the version from dagger.json and the codegen from ci/tools. For the
# v0.20.6 setup (commit abef5ad), which fails with an import cycle in
# go.opentelemetry.io/otel after codegen's `go get -u`:
#   git clone -q . /tmp/old && git -C /tmp/old checkout -q abef5ad
#   cp ci/dagger-codegen.sh ci/dagger-engine-check.sh /tmp/old/ci/
#   bash /tmp/old/ci/dagger-engine-check.sh
#
# What the engine does at load, read in github.com/dagger/dagger v0.21.8 (the
# module ci/tools pins; `go list -m -f '{{.Dir}}' github.com/dagger/dagger` in
# ci/tools):
#
# - core/schema/modulesource.go, loadModuleSourceContext: the context directory
#   is the host directory holding dagger.json, loaded with include =
#   [dagger.json, the source subpath, dagger.json's include patterns rebased
#   (rebasePatterns)] and gitignore: true. Nothing else is uploaded.
# - core/sdk/go_sdk.go (the Go SDK is built into the engine): Runtime ->
#   baseWithCodegen. The container is the engine's builtin Go SDK image
#   (_builtinContainer) with cache volumes on /go/pkg/mod and
#   /root/.cache/go-build; GOPROXY and GODEBUG come from the engine's own
#   environment (__withSystemEnvVariable); GOPRIVATE from dagger.json's
#   sdk.config.goprivate; GIT_SSH_COMMAND and the client's git config. The
#   image itself (built with the engine, outside this module's source) is
#   golang:1.26-alpine with GOTOOLCHAIN=auto: Go 1.26.x, which fetches a
#   newer toolchain only when a go line asks for one; no GOFLAGS, no GOWORK.
#   This check runs codegen and go with that environment.
#   The context is mounted at /src, <source>/dagger.gen.go is removed
#   (internal/ is kept), the workdir is /src/<source>, and it runs
#     codegen generate-module --output /src --module-source-path /src/<source>
#       --module-name <name> --introspection-json-path /schema.json
#       --lib-version <goSDKLibVersion>
#   (--is-init only for a new module), then
#     go build -ldflags "-s -w" -o /runtime .
#   goSDKLibVersion is a commit of github.com/dagger/dagger-go-sdk:
#   56bb30426a8462af6f95cfdae6461d0cc796ff50 at v0.21.8 (the v0.21.8 tag is
#   ad62903e...), 7058e931... at v0.20.6. This check asks the Go proxy for that
#   commit first; where the proxy will not resolve commits (this machine's
#   answers 403) it uses the tag, and says so. ci/dagger-codegen.sh always uses
#   the tag, so that the committed result is the same everywhere.
# - cmd/codegen/generate_module.go: --output and --module-source-path give
#   ModuleSourcePath "<source>" and ModuleParentPath "..";
#   cmd/codegen/codegen.go, Generate: runs passes until none asks for another;
#   after each, runs the generator's post-commands in <output>/<source> with
#   the container's environment.
# - cmd/codegen/generator/go/generate_module.go, bootstrapMod: fails if
#   go.mod's go line is above the Go that codegen was built with
#   (generator.go: goVersion = runtime.Version()); syncModReplaceAndTidy: adds
#   dagger.io/dagger's own go.mod requirements (embedded, dagger.GoMod) where
#   the module's are lower, and queues post-commands:
#     go mod edit -replace P=P@V    for each replace in the SDK's go.mod whose
#                                   path the module requires (v0.21.8: otel/log,
#                                   sdk/log, otlploggrpc, otlploghttp -> v0.16.0)
#     go get dagger.io/dagger@<lib-version>   unless the module replaces it;
#                                   v0.20.6 ran `go get -u` here; v0.21.1 dropped
#                                   -u (.changes/v0.21.1.md, dagger/dagger#13244)
#     go mod tidy
#   (plus `go work edit -replace` / `go work use .` when there is a go.work).
#   go.sum gets dagger.GoSum appended before tidy. With dagger.gen.go removed,
#   the first pass writes it from the core API and asks for a second pass, so
#   the post-commands run twice. The go line is only raised by `go get` (to
#   what dependencies need: go 1.26.1 for dagger.io/dagger v0.21.8); no
#   toolchain line is written.
# - Not reproduced: ModuleTypes runs `codegen generate-typedefs` (dagger.gen.go
#   and internal/ removed; `go get dagger.io/dagger@<lib> github.com/dagger/querybuilder`,
#   no tidy; then loads the package) in another container; it connects to the
#   engine, so it cannot run here. The schema is the SDL Dagger ships, not the
#   engine's live introspection (see ci/tools/schema2introspection). Known
#   differences: descriptions are wrapped differently (comments only), and
#   dagger.io/dagger's own code keeps the legacy FooID / loadFooFromID views
#   that v0.21.1 kept "for older clients" (.changes/v0.21.1.md); neither the
#   SDL nor, by that note, a v0.21 module's schema has them.
# - The SDK image's Go is golang:1.26-alpine's, a 1.26.x: its patch release
#   is the one the tag named when the engine was built, at least 1.26.1 (the
#   engine's own go.mod says go 1.26.1). Codegen was built with that Go and
#   refuses a go line above it (bootstrapMod), whatever GOTOOLCHAIN says:
#   step 4 fails when the go line is above 1.26.1; set DAGGER_SDK_GO_VERSION
#   to the image's exact Go version if you know it. cgo: left as the local Go
#   decides (alpine has no C compiler, so the engine builds without cgo).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }

version=$(jq -er .engineVersion dagger.json)
source=$(jq -er '.source // "."' dagger.json)
includes=$(jq -r '(.include // [])[]' dagger.json)
[ "$(jq '.exclude // [] | length' dagger.json)" = 0 ] || { echo "dagger.json: 'exclude' is not handled by this check" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ctx=$work/src

# 1. The context directory, as loadModuleSourceContext builds it. Only plain
#    paths are handled (a file, or a directory and everything in it); a glob or
#    "!" pattern stops the check rather than being copied approximately.
paths=(dagger.json "$source")
while IFS= read -r p; do
  [ -n "$p" ] || continue
  case $p in
  '!'* | *'*'* | *'?'* | *'['* | :*)
    echo "dagger.json include pattern '$p': this check copies plain paths only; teach it patterns first" >&2
    exit 1 ;;
  esac
  paths+=("${p%/}")
done <<<"$includes"
mkdir "$ctx"
git --literal-pathspecs ls-files -z --cached --others --exclude-standard -- "${paths[@]}" |
  { git check-ignore -z --no-index --stdin --verbose --non-matching || [ $? = 1 ]; } | # 1: nothing ignored
  while IFS= read -r -d '' from && IFS= read -r -d '' _ && IFS= read -r -d '' pattern && IFS= read -r -d '' path; do
    # a match of a non-negated .gitignore pattern: the engine leaves it out
    if [ -n "$from" ] && [ "${pattern#!}" = "$pattern" ]; then continue; fi
    [ -e "$path" ] || [ -L "$path" ] || continue # deleted, not committed yet
    mkdir -p "$ctx/$(dirname "$path")"
    cp -P -p "$path" "$ctx/$path"
  done
[ -f "$ctx/$source/go.mod" ] || { echo "the copied context has no $source/go.mod" >&2; exit 1; }
echo "context: $(find "$ctx" -type f | wc -l) files from: ${paths[*]}"

# 2. Codegen as the engine runs it, with the engine's --lib-version if the Go
#    proxy resolves it.
dagger_dir=$(cd ci/tools && go mod download github.com/dagger/dagger && go list -m -f '{{.Dir}}' github.com/dagger/dagger)
engine_lib=$(sed -n 's/^[[:space:]]*goSDKLibVersion[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$dagger_dir/core/sdk/go_sdk.go")
[ -n "$engine_lib" ] || { echo "no goSDKLibVersion in $dagger_dir/core/sdk/go_sdk.go" >&2; exit 1; }
if lib=$(cd "$work" && env -u GOFLAGS GOWORK=off go list -m -f '{{.Version}}' "dagger.io/dagger@$engine_lib" 2>"$work/lib.err"); then
  echo "lib-version: $engine_lib (the engine's; resolves to $lib)"
  lib=$engine_lib
else
  echo "note: the engine passes --lib-version $engine_lib (a dagger-go-sdk commit); the Go proxy did not resolve it ($(head -n1 "$work/lib.err")); using the tag $version" >&2
  lib=$version
fi
cp "$ctx/$source/go.mod" "$work/go.mod.committed"
bash ci/dagger-codegen.sh --context "$ctx" --lib-version "$lib"

# 3. Build as the engine does, then everything, tests included.
cd "$ctx/$source"
go_env=(env -u GOFLAGS -u GOWORK GOTOOLCHAIN=auto)
step() {
  echo "== $*"
  if ! "${go_env[@]}" "$@"; then
    echo "'$*' failed in the module as engine $version regenerates it; what codegen did to $source/go.mod:" >&2
    diff -u "$work/go.mod.committed" go.mod >&2 || true
    exit 1
  fi
}
step go build -ldflags "-s -w" -o "$work/runtime" .
step go build ./...
step go vet ./...

# 4. The go line against the engine's Go.
mod_go=$("${go_env[@]}" go mod edit -json | jq -r .Go)
engine_go=${DAGGER_SDK_GO_VERSION:-$(sed -n 's/^go //p' "$dagger_dir/go.mod")}
if [ "$(printf '%s\n%s\n' "$mod_go" "$engine_go" | sort -V | tail -n1)" != "$engine_go" ]; then
  echo "$source/go.mod after codegen says go $mod_go, but the engine's Go SDK image (golang:1.26-alpine) is only" \
    "known to run Go $engine_go (the go line of github.com/dagger/dagger $version; DAGGER_SDK_GO_VERSION overrides" \
    "it): its codegen, built with that Go, would refuse the module." >&2
  exit 1
fi
echo "The module loads as on engine $version: codegen, go build, go vet ok (go $mod_go <= $engine_go)."
