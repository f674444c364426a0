//go:build unix

package purge

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// RaiseOpenFileLimit raises this process's soft limit on open files to its
// hard limit, so that a run can keep one connection per instance open on a
// large fleet. Front ends call it once at start; the library itself never
// changes process state. It returns the soft limit now in force.
func RaiseOpenFileLimit() (uint64, error) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
			return l.Cur, fmt.Errorf("raise the open-file limit to %d: %w", l.Max, err)
		}
	}
	return l.Cur, nil
}

// fileBudget is how many more files (connections) this process can open:
// the soft limit, less those open, less a margin for the rest of the
// program. ok is false when it cannot tell.
func fileBudget() (n int, limit uint64, ok bool) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil || l.Cur == unix.RLIM_INFINITY {
		return 0, 0, false
	}
	open := 0
	if entries, err := os.ReadDir("/proc/self/fd"); err == nil {
		open = len(entries)
	} else if entries, err := os.ReadDir("/dev/fd"); err == nil {
		open = len(entries)
	}
	const margin = 32
	return int(min(l.Cur, 1<<30)) - open - margin, l.Cur, true
}
