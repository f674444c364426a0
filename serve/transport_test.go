package serve_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/serve/api"
)

// sessions is how many client connections carried instance i's requests
// whose path starts with prefix: varnishd's own log, each request with the
// session (connection) it came on.
func (f *ownFleet) sessions(i int, prefix string) int {
	f.t.Helper()
	out, err := exec.Command("varnishncsa", "-d", "-n", f.procs[i].WorkDir(), "-F", "%{VSL:Begin[2]}x %U").Output()
	require.NoError(f.t, err)
	seen := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		sess, path, ok := strings.Cut(strings.TrimSpace(l), " ")
		if ok && strings.HasPrefix(path, prefix) {
			seen[sess] = true
		}
	}
	return len(seen)
}

// heldTo counts the established TCP connections process pid holds to
// addr (IPv4 HOST:PORT), as the kernel lists them.
func heldTo(t *testing.T, pid int, addr string) int {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	require.NoError(t, err)
	ip := ap.IP.To4()
	// /proc/net/tcp: remote address as little-endian hex, ":" port in hex.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port)
	fh, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	require.NoError(t, err)
	defer fh.Close()
	n := 0
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 9 && f[2] == want && f[3] == "01" && mine[f[9]] {
			n++
		}
	}
	return n
}

// Jobs one after another go over the connections the first opened (each
// varnishd accepts one in all, not one per job), and an instance that
// leaves discovery has its connections closed.
func TestJobsShareConnections(t *testing.T) {
	f := startOwnFleet(t, 2, "", "")
	p := startServe(t, filepath.Join(t.TempDir(), "journal.db"), nil, f.Args()...)
	c := &api.Client{URL: p.url("")}
	var sent []string
	for j := range 20 {
		list := urls(fmt.Sprintf("share/%d", j), 10) // one connection per instance
		res, err := c.Purge(context.Background(), api.Request{URLs: list}, "json", false)
		require.NoError(t, err)
		require.True(t, res.OK(), res.Failure)
		sent = append(sent, list...)
	}
	for i := range 2 {
		require.Empty(t, f.missing(i, sent))
		require.Equal(t, 1, f.sessions(i, "/share/"), "%s: connections that carried 20 jobs", f.Instance(i))
		require.Equal(t, 1, heldTo(t, p.cmd.Process.Pid, f.Instance(i)), "kept for the next job")
	}

	// Instance 1 leaves DNS: once a job finds the fleet without it, serve
	// holds no connection to it.
	f.list(2, 1)
	eventually(t, 30*time.Second, "a job without instance 1", func() (bool, string) {
		res, err := c.Purge(context.Background(), api.Request{URLs: urls("after", 1)}, "json", false)
		require.NoError(t, err)
		return !strings.Contains(string(res.Report), f.Instance(1)), string(res.Report)
	})
	require.Zero(t, heldTo(t, p.cmd.Process.Pid, f.Instance(1)), "connections to an instance that left")
	require.Equal(t, 1, heldTo(t, p.cmd.Process.Pid, f.Instance(0)))
	require.Equal(t, 0, p.stop(t))
}
