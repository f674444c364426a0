//go:build tools

// Package lint pins staticcheck, which .ci/run runs over every module of the
// project. It is a module of its own so that its requirements never move
// ci/tools' (where Dagger's codegen must build as the engine builds it).
package lint

import (
	_ "honnef.co/go/tools/cmd/staticcheck"
)
