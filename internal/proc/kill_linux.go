package proc

import (
	"errors"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// KillGroup stops, with SIGKILL, the process leader and every process of
// the group it leads, and returns how many it signalled (zombies, already
// gone, are not counted). Each process is
// checked and signalled through a pidfd, so a pid that another process got
// meanwhile is never signalled; a process counts as the group's only when
// its process group is leader's pid and it started no earlier than the
// leader. When the leader has died and its pid is held by a later process,
// the group is gone (Linux gives no process a pid that names a live
// process group), and nothing is signalled.
func KillGroup(leader ID) (int, error) {
	if s, err := Read(leader.Pid); err == nil && s.Start != leader.Start {
		return 0, nil // the pid is another process's now: nothing of the group is left
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		s, err := Read(pid)
		if err != nil || s.Pgid != leader.Pid || s.Start < leader.Start || s.State == 'Z' {
			continue
		}
		if err := kill(s.ID, leader.Pid); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// kill sends SIGKILL to id through a pidfd, after checking, on that pidfd's
// process, that it is id and still in process group pgid.
func kill(id ID, pgid int) error {
	fd, err := unix.PidfdOpen(id.Pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil // gone
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	s, err := Read(id.Pid) // the pidfd holds the process: this is it, or it is gone
	if err != nil || s.Start != id.Start || s.Pgid != pgid {
		return nil
	}
	if err := unix.PidfdSendSignal(fd, syscall.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}
