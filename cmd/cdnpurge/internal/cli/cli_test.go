package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cdnpurge/cdnpurge/internal/dnsserver"
	"github.com/cdnpurge/cdnpurge/internal/loopback"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

func TestMain(m *testing.M) {
	_, _ = purge.RaiseOpenFileLimit()
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeBinary()
		os.Exit(code)
	}))
}

// httpFleet is n HTTP listeners on distinct loopback addresses and one port,
// listed as A records of "cdn.test" by a real DNS server.
type httpFleet struct {
	dns   *dnsserver.Server
	port  int
	addrs []string
	mu    sync.Mutex
	hits  map[string][]*http.Request // by instance address
}

func startFleet(t *testing.T, n int, handler func(addr string, w http.ResponseWriter, r *http.Request)) *httpFleet {
	t.Helper()
	ls, port, err := loopback.Listen(n)
	require.NoError(t, err)
	f := &httpFleet{port: port, hits: map[string][]*http.Request{}}
	d, err := dnsserver.Start("127.0.0.1")
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	f.dns = d
	for _, l := range ls {
		addr := l.Addr().(*net.TCPAddr).IP.String()
		f.addrs = append(f.addrs, addr)
		require.NoError(t, d.Add("cdn.test. IN A "+addr))
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			f.hits[addr] = append(f.hits[addr], r)
			f.mu.Unlock()
			if handler != nil {
				handler(addr, w, r)
			}
		})}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	return f
}

func (f *httpFleet) requests(addr string) []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[addr]
}

func (f *httpFleet) args(extra ...string) []string {
	return append([]string{"--dns-name", "cdn.test", "--record", "a", "--resolver", f.dns.Addr, "--port", fmt.Sprint(f.port)}, extra...)
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &App{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Version: "test",
		Getenv: func(k string) string { return env[k] }}
	code := a.Run(context.Background(), args)
	return result{code, out.String(), errb.String()}
}

func TestPurgeAllInstancesExit0(t *testing.T) {
	f := startFleet(t, 3, nil)
	r := run(t, map[string]string{"PURGE_TOKEN": "tok-123"}, "", append([]string{"purge", "--url", "https://changelog.com/podcast/1?x=1"}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stderr+r.stdout)
	assert.Contains(t, r.stdout, "purged 1 URL on 3/3 instances")
	for _, a := range f.addrs {
		reqs := f.requests(a)
		require.Len(t, reqs, 1, a)
		assert.Equal(t, "PURGE", reqs[0].Method)
		assert.Equal(t, "changelog.com", reqs[0].Host)
		assert.Equal(t, "/podcast/1?x=1", reqs[0].RequestURI)
		assert.Equal(t, "tok-123", reqs[0].Header.Get("Purge-Token"))
		assert.Equal(t, "cdnpurge/"+purge.Version(), reqs[0].UserAgent())
	}
	assert.NotContains(t, r.stdout+r.stderr, "tok-123")
}

func TestPurgePartialFailureExit1(t *testing.T) {
	var bad string
	f := startFleet(t, 3, func(addr string, w http.ResponseWriter, r *http.Request) {
		if addr == bad {
			w.WriteHeader(http.StatusForbidden)
		}
	})
	bad = f.addrs[1]
	r := run(t, map[string]string{"PURGE_TOKEN": "wrong"}, "", append([]string{"purge", "--url", "https://example.com/a", "--format", "json"}, f.args()...)...)
	require.Equal(t, ExitFailed, r.code, r.stderr)
	rep := reporttest.Require(t, r.stdout)
	assert.False(t, rep.OK)
	results := rep.Only(t).Results
	require.Len(t, results, 3)
	for _, res := range results {
		if strings.HasPrefix(res.Instance, bad+":") {
			assert.False(t, res.OK)
			assert.Equal(t, 403, res.Status)
			assert.Contains(t, res.Error, "403 Forbidden")
			assert.Contains(t, res.Error, "refused the PURGE")
		} else {
			assert.True(t, res.OK, res.Instance)
		}
	}
	assert.NotContains(t, r.stdout, "wrong")
}

func TestPurgeURLsFileAndStdin(t *testing.T) {
	f := startFleet(t, 2, nil)
	file := filepath.Join(t.TempDir(), "changed.txt")
	require.NoError(t, os.WriteFile(file, []byte("# changed\nhttps://example.com/1\n\nhttps://example.com/2\n"), 0o644))
	r := run(t, nil, "", append([]string{"purge", "--urls-file", file, "--url", "https://example.com/0"}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "purged 3 URLs on 2/2 instances")

	r = run(t, nil, "https://example.com/from-stdin\n", append([]string{"purge", "--urls-file", "-", "--format", "markdown"}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "| `https://example.com/from-stdin` |")
	assert.Len(t, f.requests(f.addrs[0]), 4)
}

func TestPurgeTokenFile(t *testing.T) {
	f := startFleet(t, 1, nil)
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("from-file\n"), 0o600))
	r := run(t, map[string]string{"PURGE_TOKEN": "from-env"}, "", append([]string{"purge", "--url", "https://example.com/", "--token-file", file, "--token-header", "X-Token"}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, "from-file", f.requests(f.addrs[0])[0].Header.Get("X-Token"))
}

func TestPurgeDryRunSendsNothing(t *testing.T) {
	f := startFleet(t, 2, nil)
	r := run(t, map[string]string{"PURGE_TOKEN": "secret-xyz"}, "", append([]string{"purge", "--url", "https://example.com/a?b=1", "--dry-run"}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "would send PURGE to 2 instances x 1 URL over http; nothing was sent")
	assert.Contains(t, r.stdout, "PURGE /a?b=1  Host: example.com")
	assert.Contains(t, r.stdout, "Purge-Token: (hidden)")
	assert.NotContains(t, r.stdout, "secret-xyz")
	for _, a := range f.addrs {
		assert.Contains(t, r.stdout, a)
		assert.Empty(t, f.requests(a))
	}

	// In JSON: the report's shape, each step with what it would send.
	r = run(t, map[string]string{"PURGE_TOKEN": "secret-xyz"}, "", append([]string{"purge", "--url", "https://example.com/a?b=1", "--dry-run", "--verify", "--format", "json"}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.NotContains(t, r.stdout, "secret-xyz")
	rep := reporttest.Require(t, r.stdout)
	assert.True(t, rep.DryRun)
	assert.Len(t, rep.Instances, 2)
	require.Len(t, rep.Steps, 2)
	assert.Equal(t, []string{"purge", "PURGE", "verify", "HEAD"}, []string{rep.Steps[0].Name, rep.Steps[0].Method, rep.Steps[1].Name, rep.Steps[1].Method})
	assert.Equal(t, []string{"https://example.com/a?b=1"}, rep.Steps[0].URLs)
	assert.Contains(t, rep.Steps[0].RequestHeaders, "Purge-Token: (hidden)")
	for _, a := range f.addrs {
		assert.Empty(t, f.requests(a))
	}
}

func TestPurgeUsageAndDiscoveryErrorsExit2(t *testing.T) {
	f := startFleet(t, 1, nil)
	file := filepath.Join(t.TempDir(), "urls.txt")
	require.NoError(t, os.WriteFile(file, []byte("https://example.com/ok\n\nnot-a-url\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"purge"}, "no URL given"},
		{[]string{"purge", "--url", "/relative"}, "not absolute"},
		{[]string{"purge", "--urls-file", file}, "line 3"},
		{[]string{"purge", "--url", "https://e.com/", "--format", "xml"}, "use text, json or markdown"},
		{[]string{"purge", "--url", "https://e.com/", "--record", "mx"}, "use aaaa, a or srv"},
		{[]string{"purge", "--url", "https://e.com/", "--header", "nocolon"}, "Name: value"},
		{[]string{"purge", "--url", "https://e.com/", "--insecure"}, "only applies to https"},
		{[]string{"purge", "--url", "https://e.com/", "--bogus"}, "unknown flag --bogus"},
		{[]string{"purge", "https://e.com/"}, "unexpected argument"},
		{[]string{"nonsense"}, "unknown command"},
		{[]string{"purge", "--url", "https://e.com/", "--port", "0"}, "--port 0"},
		{[]string{"purge", "--url", "https://e.com/", "--dns-timeout", "0s"}, "--dns-timeout"},
		{[]string{"purge", "--url", "https://e.com/", "--timeout", "0s"}, "--timeout"},
		{[]string{"purge", "--url", "https://e.com/", "--retries", "-1"}, "--retries"},
		{[]string{"purge", "--url", "https://e.com/", "--concurrency", "0"}, "--concurrency"},
		{[]string{"purge", "--url", "https://e.com/", "--token-file", "/nonexistent/token"}, "--token-file"},
		{[]string{"purge", "--url", "https://e.com/", "--scheme", "ftp"}, "--scheme ftp: use http or https"},
		{[]string{"purge", "--url", "https://e.com/", "--wait", "1s"}, "unknown flag --wait\nhint: --wait is a flag of 'cdnpurge verify'"},
		{[]string{"purge", "--url", "https://e.com/", "--token-header", "Host"}, "sets that header itself"},
		{[]string{"purge", "--url", "https://e.com/", "--header", "X-A: b\x1b[31m"}, "control characters"},
		{[]string{"purge", "--url", "https://e.com/", "--method", ""}, "--method is empty"},
		{[]string{"purge", "--url", "https://e.com/", "--method", "BAN", "--verify"}, "give the URLs to verify"},
		{[]string{"purge", "--url", "https://e.com/", "--tag", "a b"}, "tag"},
		{[]string{"purge", "--url", "https://e.com/", "--ok-status", "abc"}, "not a number"},
		{[]string{"ban", "--url", "https://e.com/"}, "--regex is required"},
		{[]string{"ban", "--url", "https://e.com/", "--regex", "^/a b"}, "white space"},
	} {
		args := append(append([]string{tc.args[0]}, f.args()...), tc.args[1:]...)
		r := run(t, nil, "", args...)
		assert.Equal(t, ExitUsage, r.code, tc.args)
		assert.Contains(t, r.stderr, tc.want, tc.args)
		assert.Empty(t, r.stdout, "a usage error writes nothing on stdout: %v", tc.args)
		assert.Empty(t, f.requests(f.addrs[0]), "nothing was sent: %v", tc.args)
	}
	// Discovery errors.
	r := run(t, nil, "", "purge", "--url", "https://e.com/", "--dns-name", "nope.test", "--resolver", f.dns.Addr)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "NXDOMAIN")
	assert.Contains(t, r.stderr, "\nhint: check the name; on Fly.io it is <app>.internal\n", "the library's remedy, where no flag is concerned")
	r = run(t, nil, "", "purge", "--url", "https://e.com/", "--dns-name", "cdn.test", "--resolver", f.dns.Addr)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "hint: try --record a")
	assert.Equal(t, 1, strings.Count(r.stderr, "record"+" type")+strings.Count(r.stderr, "--record"), "the remedy is worded once: %s", r.stderr)
	// A resolver that does not answer: one remedy, in flags.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	r = run(t, nil, "", "purge", "--url", "https://e.com/", "--dns-name", "cdn.test", "--resolver", silent.LocalAddr().String(), "--dns-timeout", "100ms")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "\nhint: check --resolver, or raise --dns-timeout\n")
	assert.NotContains(t, r.stderr, "check the resolver address", "the remedy is worded once, in flags: %s", r.stderr)
	r = run(t, nil, "", "purge", "--url", "https://e.com/")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "no instances")
}

func TestHelp(t *testing.T) {
	r := run(t, nil, "", "purge", "--help")
	assert.Equal(t, ExitOK, r.code)
	for _, flag := range []string{"--dns-name", "--record", "--port", "--resolver", "--instance", "--url", "--urls-file", "--token-file", "--token-header", "--method", "--header", "--scheme", "--insecure", "--concurrency", "--timeout", "--retries", "--format", "--dry-run", "Exit codes"} {
		assert.Contains(t, r.stdout, flag)
	}
	assert.Equal(t, 1, strings.Count(r.stdout, "Usage:"), "help printed once")
	assert.Empty(t, r.stderr)
	for _, cmd := range []string{"ban", "verify", "demo"} {
		r := run(t, nil, "", cmd, "--help")
		assert.Equal(t, ExitOK, r.code, cmd)
		assert.Equal(t, 1, strings.Count(r.stdout, "Usage:"), cmd)
	}
	r = run(t, nil, "", "--help")
	assert.Equal(t, ExitOK, r.code)
	assert.Contains(t, r.stdout, "purge")
	r = run(t, nil, "")
	assert.Equal(t, ExitUsage, r.code)
	r = run(t, nil, "", "version")
	assert.Equal(t, "cdnpurge test\n", r.stdout)
}

func TestPurgeDeadlineStopsPendingRequests(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	f := startFleet(t, 2, func(addr string, w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	r := run(t, nil, "", append([]string{"purge", "--url", "https://example.com/slow", "--deadline", "200ms"}, f.args()...)...)
	assert.Equal(t, ExitFailed, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "stopped")
	assert.Contains(t, r.stdout, "purged 0 of 2 (1 URL x 2 instances)")
	assert.Contains(t, r.stdout, "stopped before an answer came: the job's deadline passed")
	assert.Contains(t, r.stderr, "hint: the run was stopped by --deadline")
}
