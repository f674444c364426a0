// Package proc recognises a process again: its pid with the time it
// started, as Linux gives both in /proc/PID/stat. A pid alone names
// whatever process has it now, which after a reboot or a busy day is
// another one; a pid and its start time name one process, ever. Recorded
// when a process is started, they let a later sweep stop exactly that
// process (and its process group, which it leads), and nothing else.
package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ID is one process: its pid and its start time (clock ticks after boot).
type ID struct {
	Pid   int
	Start uint64
}

// Stat is what is read of a process.
type Stat struct {
	ID
	Pgid  int  // its process group
	State byte // R, S, D, Z (a zombie: gone, not yet reaped) ...
}

// ErrGone says the process no longer exists.
var ErrGone = errors.New("no such process")

// Read reads /proc/PID/stat.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return Stat{}, fmt.Errorf("process %d: %w", pid, ErrGone)
	}
	if err != nil {
		return Stat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return parseStat(pid, string(b))
}

// parseStat reads "PID (COMM) STATE PPID PGRP ... STARTTIME ...": COMM
// may hold spaces and parentheses, so the fields are counted from the last
// ')'.
func parseStat(pid int, s string) (Stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("process %d: unreadable stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): pgrp is field 5, starttime field 22.
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("process %d: unreadable stat %q", pid, s)
	}
	pgid, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return Stat{}, fmt.Errorf("process %d: unreadable stat %q", pid, s)
	}
	return Stat{ID: ID{Pid: pid, Start: start}, Pgid: pgid, State: f[0][0]}, nil
}

// Self is this process.
func Self() (ID, error) {
	s, err := Read(os.Getpid())
	return s.ID, err
}

// Of returns the ID of the running process pid.
func Of(pid int) (ID, error) {
	s, err := Read(pid)
	return s.ID, err
}

// String is the ID as recorded: "PID START".
func (id ID) String() string { return strconv.Itoa(id.Pid) + " " + strconv.FormatUint(id.Start, 10) }

// Parse reads an ID as String writes it.
func Parse(s string) (ID, error) {
	p, st, ok := strings.Cut(strings.TrimSpace(s), " ")
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(st, 10, 64)
	if !ok || err1 != nil || err2 != nil || pid <= 0 {
		return ID{}, fmt.Errorf("process record %q: want \"PID START\"", s)
	}
	return ID{Pid: pid, Start: start}, nil
}

// Alive says whether the process id is still running: its pid is held by
// the process that started at its start time, and that is not a zombie
// (dead, not yet reaped by its parent).
func (id ID) Alive() bool {
	s, err := Read(id.Pid)
	return err == nil && s.Start == id.Start && s.State != 'Z'
}
