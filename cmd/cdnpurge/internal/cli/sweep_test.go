package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/internal/proc"
)

// demoProc is a 'cdnpurge demo --keep' running in its own process group,
// as a user starts one from a shell.
type demoProc struct {
	cmd    *exec.Cmd
	dir    string        // its fleet's state directory
	exited chan struct{} // closed once it exited and was reaped
}

func startDemo(t *testing.T, bin string) *demoProc {
	t.Helper()
	cmd := exec.Command(bin, "demo", "--keep", "--instances", "2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = io.Discard
	require.NoError(t, cmd.Start())
	d := &demoProc{cmd: cmd, exited: make(chan struct{})}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // a live demo stops its fleet
		select {
		case <-d.exited:
		case <-time.After(time.Minute):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	up := make(chan bool, 1)
	go func() {
		defer close(d.exited)
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			if !found && strings.Contains(sc.Text(), "stays up until Ctrl-C") {
				found = true
				up <- true
			}
		}
		if !found {
			up <- false
		}
		_ = cmd.Wait() // reaped, as a shell reaps what it started
	}()
	select {
	case ok := <-up:
		require.True(t, ok, "the demo ended before staying up")
	case <-time.After(2 * time.Minute):
		t.Fatal("the demo did not come up")
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("cdnpurge-fleet-%d-*", cmd.Process.Pid)))
	require.Len(t, dirs, 1)
	d.dir = dirs[0]
	return d
}

// alive says whether pid runs (a zombie, dead and not yet reaped, does
// not).
func alive(pid int) bool {
	s, err := proc.Read(pid)
	return err == nil && s.State != 'Z'
}

// The scenario of issue 16: demo A killed with kill -9, demo B running, a
// script with 'tail -F' on a file in A's directory runs 'cdnpurge demo
// --clean'. Only what A started is stopped: A's varnishd. The script, its
// tail, B, B's varnishd and --clean itself go on.
func TestCleanStopsOnlyWhatTheDeadDemoStarted(t *testing.T) {
	fleettest.NeedVarnishd(t)
	bin := binary(t)
	a := startDemo(t, bin)
	b := startDemo(t, bin)
	bVarnishd := processesUnder(b.dir)
	require.NotEmpty(t, bVarnishd)
	require.NoError(t, syscall.Kill(a.cmd.Process.Pid, syscall.SIGKILL))
	<-a.exited
	aVarnishd := processesUnder(a.dir)
	require.NotEmpty(t, aVarnishd, "A's varnishd outlive it")

	log := filepath.Join(a.dir, "watched.log")
	require.NoError(t, os.WriteFile(log, []byte("x\n"), 0o644))
	script := exec.Command("bash", "-c", `tail -F "$1" >/dev/null 2>&1 & echo "tail=$!"; "$2" demo --clean; echo "clean=$?"; kill -0 $! && echo "tail alive"; kill $!`, "script", log, bin)
	script.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, as a shell script's
	var out bytes.Buffer
	script.Stdout, script.Stderr = &out, &out
	require.NoError(t, script.Run(), out.String())

	got := out.String()
	assert.Contains(t, got, "removed "+a.dir, "A's fleet is removed")
	assert.Contains(t, got, "clean=0", "--clean itself finished")
	assert.Contains(t, got, "tail alive", "the script's tail on a file in A's directory lives")
	assert.NotContains(t, got, "removed "+b.dir)
	for _, p := range aVarnishd {
		var pid int
		_, _ = fmt.Sscan(p, &pid)
		assert.False(t, alive(pid), "A's varnishd %d stopped", pid)
	}
	assert.True(t, alive(b.cmd.Process.Pid), "live demo B runs on")
	assert.ElementsMatch(t, bVarnishd, processesUnder(b.dir), "B's varnishd run on")
	assert.DirExists(t, b.dir)
}
