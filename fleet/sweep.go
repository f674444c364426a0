package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stateDirPrefix names the directory of each fleet: the prefix, the pid of
// the process that owns it, and a random suffix.
const stateDirPrefix = "cdnpurge-fleet-"

func newStateDir() (string, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", stateDirPrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("fleet: %w", err)
	}
	// varnishd's worker runs as an unprivileged user and must reach its files.
	return dir, os.Chmod(dir, 0o755)
}

// Sweep stops what fleets of dead processes left behind (a demo killed with
// kill -9, a test binary killed by its timeout): their varnishd processes,
// network namespaces and directories. Fleets of live processes are left
// alone. It returns what it removed.
func Sweep(ctx context.Context) ([]string, error) {
	var removed []string
	var errs []error
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), stateDirPrefix+"*"))
	for _, d := range dirs {
		pid, err := ownerPid(filepath.Base(d))
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		if err := killUnder(ctx, d); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("fleet sweep: %w", err))
			continue
		}
		removed = append(removed, d)
	}
	removed = append(removed, sweepNetns(ctx)...)
	return removed, errors.Join(errs...)
}

func ownerPid(base string) (int, error) {
	rest, _ := strings.CutPrefix(base, stateDirPrefix)
	pid, _, _ := strings.Cut(rest, "-")
	return strconv.Atoi(pid)
}

// alive says whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// killUnder kills the process groups of every process whose command line
// names dir (each varnishd runs with -n DIR/...), and waits until they are
// gone.
func killUnder(ctx context.Context, dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := processesNaming(dir)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("fleet sweep: processes %v under %s do not stop", pids, dir)
		}
		t := time.NewTimer(20 * time.Millisecond) // poll until the kernel has reaped them
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// processesNaming lists the processes whose command line contains s.
func processesNaming(s string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			out = append(out, pid)
		}
	}
	return out
}
