package cli

// Tests of the built binary: what only a real process shows (its version in
// the User-Agent, its open-file limit, a kill -9).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/internal/loopback"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binary builds cdnpurge once for the package's tests; TestMain removes it.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "cdnpurge-cli-bin-"); binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "cdnpurge"), "github.com/cdnpurge/cdnpurge/cmd/cdnpurge").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build cdnpurge: %v\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return filepath.Join(binDir, "cdnpurge")
}

func removeBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

// The User-Agent carries the version that 'cdnpurge version' prints.
func TestVersionIsTheUserAgents(t *testing.T) {
	bin := binary(t)
	out, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	version := strings.TrimPrefix(strings.TrimSpace(string(out)), "cdnpurge ")
	require.NotEmpty(t, version)
	f := startFleet(t, 1, nil)
	require.NoError(t, exec.Command(bin, append([]string{"purge", "--url", "https://example.com/"}, f.args()...)...).Run())
	assert.Equal(t, "cdnpurge/"+version, f.requests(f.addrs[0])[0].UserAgent())
}

// A 1,000-instance fleet under a low open-file limit: the soft limit is
// lifted to the hard one, and a low hard limit makes the instances be
// reached in turns, said once, instead of failing with "too many open files".
func TestOpenFileLimit(t *testing.T) {
	bin := binary(t)
	const n = 1000
	ls, port, err := loopback.Listen(n)
	require.NoError(t, err)
	var reqs atomic.Int64
	args := []string{"purge", "--url", "https://example.com/x", "--retries", "0"}
	for _, l := range ls {
		srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reqs.Add(1) })}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		args = append(args, "--instance", l.Addr().(*net.TCPAddr).IP.String())
	}
	args = append(args, "--port", fmt.Sprint(port))
	for _, limit := range []string{"ulimit -Sn 256", "ulimit -n 256"} {
		cmd := exec.Command("bash", append([]string{"-c", limit + ` && exec "$0" "$@"`, bin}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		before := reqs.Load()
		code := exitCode(t, cmd.Run())
		assert.Equal(t, ExitOK, code, "%s: %s", limit, stderr.String())
		assert.Contains(t, stdout.String(), fmt.Sprintf("purged 1 URL on %d/%d instances", n, n), limit)
		assert.NotContains(t, stdout.String()+stderr.String(), "too many open files", limit)
		assert.Equal(t, int64(n), reqs.Load()-before, limit)
		if limit == "ulimit -n 256" {
			assert.Equal(t, 1, strings.Count(stdout.String(), "warning: connections limited to"), "said once: %s", stdout.String())
		}
	}
}

// A report that cannot be written after the requests were sent is a
// failure (exit 1), not a usage error: something was sent.
func TestReportWriteFailureAfterSendingExits1(t *testing.T) {
	f := startFleet(t, 1, nil)
	a := &App{Stdin: strings.NewReader(""), Stdout: failingWriter{}, Stderr: io.Discard, Version: "test", Getenv: func(string) string { return "" }}
	var errb bytes.Buffer
	a.Stderr = &errb
	code := a.Run(t.Context(), append([]string{"purge", "--url", "https://example.com/"}, f.args()...))
	assert.Equal(t, ExitFailed, code)
	assert.Contains(t, errb.String(), "write the report")
	assert.Len(t, f.requests(f.addrs[0]), 1, "the purge was sent")
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// After kill -9 of a demo, 'cdnpurge demo --clean' stops the varnishd it
// left and removes its namespaces and directories.
func TestDemoKilledIsCleanedUp(t *testing.T) {
	fleettest.NeedVarnishd(t)
	bin := binary(t)
	modes := []string{"loopback"}
	if fleet.NetnsAvailable(t.Context()) == nil {
		modes = append(modes, "netns")
	}
	for _, mode := range modes {
		cmd := exec.Command(bin, "demo", "--keep", "--instances", "2", "--mode", mode)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		up := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			found := false
			for sc.Scan() {
				if strings.Contains(sc.Text(), "stays up until Ctrl-C") && !found {
					found = true
					up <- true
				}
			}
			if !found {
				up <- false
			}
		}()
		select {
		case ok := <-up:
			require.True(t, ok, "%s: the demo ended before staying up", mode)
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("%s: the demo did not come up", mode)
		}
		pid := cmd.Process.Pid
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("cdnpurge-fleet-%d-*", pid)))
		require.Len(t, dirs, 1, "%s: the killed demo's directory", mode)
		require.NotEmpty(t, processesUnder(dirs[0]), "%s: the killed demo left varnishd running", mode)
		if mode == "netns" {
			require.NotEmpty(t, namespacesOf(t, pid), "the killed demo left its namespaces")
		}

		out, err := exec.Command(bin, "demo", "--clean").CombinedOutput()
		require.NoError(t, err, string(out))
		assert.Contains(t, string(out), "removed "+dirs[0], mode)
		assert.Empty(t, processesUnder(dirs[0]), "%s: varnishd stopped", mode)
		assert.NoDirExists(t, dirs[0])
		if mode == "netns" {
			assert.Empty(t, namespacesOf(t, pid), "namespaces removed")
		}
	}
}

// processesUnder lists the processes whose command line names dir.
func processesUnder(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			out = append(out, e.Name())
		}
	}
	return out
}

func namespacesOf(t *testing.T, pid int) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	require.NoError(t, err)
	var ns []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, fmt.Sprintf("cdnpurge-%d-", pid)) {
			ns = append(ns, line)
		}
	}
	return ns
}
