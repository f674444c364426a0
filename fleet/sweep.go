package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/internal/proc"
	"github.com/cdnpurge/cdnpurge/varnish"
)

// stateDirPrefix names the directory of each fleet: the prefix, the pid of
// the process that owns it, and a random suffix. ownerFile in it records
// the owner (pid and start time), and each varnishd's own directory in it
// records that varnishd (varnish.PidFile).
const (
	stateDirPrefix = "cdnpurge-fleet-"
	ownerFile      = "owner"
)

func newStateDir() (string, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", stateDirPrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("fleet: %w", err)
	}
	if self, err := proc.Self(); err == nil {
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(self.String()+"\n"), 0o644); err != nil {
			return dir, fmt.Errorf("fleet: %w", err)
		}
	}
	// varnishd's worker runs as an unprivileged user and must reach its files.
	return dir, os.Chmod(dir, 0o755)
}

// Sweep stops what fleets of dead processes left behind (a demo killed with
// kill -9, a test binary killed by its timeout): their varnishd processes,
// network namespaces and directories. It stops only the processes such a
// fleet recorded starting (pid and start time, so never one that got the
// pid later) and the process groups they lead, never a process group it
// did not create; fleets of live processes, and everything else, are left
// alone. It returns what it removed.
func Sweep(ctx context.Context) ([]string, error) {
	var removed []string
	var errs []error
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), stateDirPrefix+"*"))
	for _, d := range dirs {
		if ownerAlive(d) {
			continue
		}
		if err := stopRecorded(ctx, d); err != nil {
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

// ownerAlive says whether the process that owns state directory d still
// runs: the recorded pid with its recorded start time, or (for a directory
// without a record) any process with that pid.
func ownerAlive(d string) bool {
	base := filepath.Base(d)
	rest, _ := strings.CutPrefix(base, stateDirPrefix)
	p, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(p)
	if err != nil || pid == os.Getpid() {
		return true // not ours to judge, or our own
	}
	if b, err := os.ReadFile(filepath.Join(d, ownerFile)); err == nil {
		if id, err := proc.Parse(string(b)); err == nil {
			return id.Alive()
		}
	}
	_, err = proc.Read(pid)
	return err == nil
}

// stopRecorded stops every varnishd recorded under d, with the process
// group each leads, and waits until they are gone.
func stopRecorded(ctx context.Context, d string) error {
	records, _ := filepath.Glob(filepath.Join(d, "*", varnish.PidFile))
	var ids []proc.ID
	for _, r := range records {
		b, err := os.ReadFile(r)
		if err != nil {
			continue
		}
		if id, err := proc.Parse(string(b)); err == nil {
			ids = append(ids, id)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := 0
		var errs []error
		for _, id := range ids {
			n, err := proc.KillGroup(id)
			left += n
			if err != nil {
				errs = append(errs, err)
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("fleet sweep: %d processes of the fleet under %s do not stop: %w", left, d, errors.Join(errs...))
		}
		t := time.NewTimer(20 * time.Millisecond) // poll until the kernel has reaped them
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}
