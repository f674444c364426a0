//go:build tools

// Package tools pins the programs CI builds from source: Dagger's codegen
// (to generate the module's bindings offline) and actionlint.
package tools

import (
	_ "github.com/dagger/dagger/cmd/codegen"
	_ "github.com/rhysd/actionlint/cmd/actionlint"
)
