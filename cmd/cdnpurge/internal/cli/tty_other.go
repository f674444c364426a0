//go:build !linux

package cli

import "os"

// isTerminal is false here: no progress line.
func isTerminal(*os.File) bool { return false }
