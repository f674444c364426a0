//go:build !unix

package purge

// RaiseOpenFileLimit does nothing here.
func RaiseOpenFileLimit() (uint64, error) { return 0, nil }

func fileBudget() (n int, limit uint64, ok bool) { return 0, 0, false }
