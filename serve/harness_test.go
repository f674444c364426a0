package serve_test

// The harness: real serve processes built from cmd/cdnpurge, and a fleet of
// real varnishd (package varnish) on 127.0.x.y addresses, found by A
// records at a DNS server of the test's own, that can be stopped, started
// again and taken out of DNS, each asked afterwards (varnishncsa) what it
// received.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/internal/dnsserver"
	"github.com/cdnpurge/cdnpurge/internal/loopback"
	"github.com/cdnpurge/cdnpurge/internal/syncbuf"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/varnish"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// cli builds cmd/cdnpurge once.
func cli(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "cdnpurge-serve-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cdnpurge")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/cdnpurge/cdnpurge/cmd/cdnpurge").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build cdnpurge: %v\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

// proc is a running cdnpurge serve.
type proc struct {
	cmd     *exec.Cmd
	addr    string // HOST:PORT it serves on
	journal string
	out     *syncbuf.Buffer
	exited  chan struct{}
	code    int
}

var servingRE = regexp.MustCompile(`msg=serving addr=(\S+)|"msg":"serving","addr":"([^"]+)"`)

// startServe runs cdnpurge serve with args (and --listen 127.0.0.1:0 and
// --journal journal), and returns once it serves. env adds variables.
func startServe(t testing.TB, journal string, env []string, args ...string) *proc {
	t.Helper()
	p := tryServe(t, journal, env, args...)
	deadline := time.Now().Add(30 * time.Second)
	for p.addr == "" {
		select {
		case <-p.exited:
			t.Fatalf("serve exited with %d before serving:\n%s", p.code, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not serving after 30s:\n%s", p.out.String())
		}
		if m := servingRE.FindStringSubmatch(p.out.String()); m != nil {
			p.addr = m[1] + m[2]
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// tryServe starts serve and does not wait for it to serve.
func tryServe(t testing.TB, journal string, env []string, args ...string) *proc {
	t.Helper()
	all := append([]string{"serve", "--listen", "127.0.0.1:0", "--journal", journal}, args...)
	cmd := exec.Command(cli(t), all...)
	cmd.Env = append(os.Environ(), env...)
	out := &syncbuf.Buffer{Limit: 8 << 20}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, journal: journal, out: out, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		_ = err
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(d):
		t.Fatalf("serve still running after %s:\n%s", d, p.out.String())
	}
	return -1
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t testing.TB) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(t, time.Minute)
}

// rssKiB is the process's peak resident set size (VmHWM), in KiB.
func (p *proc) rssKiB(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	require.NoError(t, err)
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	require.NotNil(t, m)
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// cpu is the user and system time the process has used so far.
func (p *proc) cpu(t testing.TB) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	require.NoError(t, err)
	// Fields after the command name (which may hold spaces): utime and
	// stime are the 12th and 13th, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// call sends one request to serve and returns the status, headers and body.
func call(t testing.TB, method, url, token string, body any, header ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ":")
		if strings.EqualFold(k, "Host") {
			req.Host = strings.TrimSpace(v)
			continue
		}
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

// jobView is what GET /v1/jobs/ID answers (the fields the tests read).
type jobView struct {
	Job         string          `json:"job"`
	State       string          `json:"state"`
	OK          *bool           `json:"ok"`
	Interrupted bool            `json:"interrupted"`
	Report      json.RawMessage `json:"report"`
	Pending     []struct {
		Instance string `json:"instance"`
		URLs     int    `json:"urls"`
	} `json:"pending"`
	Deliveries []struct {
		Instance string `json:"instance"`
		State    string `json:"state"`
		Replays  int    `json:"replays"`
	} `json:"deliveries"`
}

func getJob(t testing.TB, p *proc, token, id string) jobView {
	t.Helper()
	st, _, b := call(t, http.MethodGet, p.url("/v1/jobs/"+id), token, nil)
	require.Equal(t, http.StatusOK, st, string(b))
	var v jobView
	require.NoError(t, json.Unmarshal(b, &v), string(b))
	return v
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s (%s)", what, d, last)
}

// ownFleet is varnishd instances of the test's own, on 127.0.1.x, listed
// as A records of Name at DNS.
type ownFleet struct {
	t      testing.TB
	Name   string
	dns    *dnsserver.Server
	origin *fleet.Origin
	port   int
	tmpl   string
	token  string
	procs  []*varnish.Process
	// seen keeps what stopped instances had received.
	mu   sync.Mutex
	seen [][]string
}

// slowTemplate is the shipped VCL with each PURGE taking d (vmod vtc's
// sleep, which Debian's varnish ships): a slow or distant instance.
func slowTemplate(d string) string {
	v := varnish.VCLTemplate()
	v = strings.Replace(v, "import std;", "import std;\nimport vtc;", 1)
	return strings.Replace(v, "sub vcl_recv {", "sub vcl_recv {\n    if (req.method == \"PURGE\") { vtc.sleep("+d+"); }", 1)
}

func startOwnFleet(t testing.TB, n int, tmpl, token string) *ownFleet {
	t.Helper()
	fleettest.NeedVarnishd(t)
	f := &ownFleet{t: t, Name: "serve.cdnpurge.test", tmpl: tmpl, token: token, procs: make([]*varnish.Process, n), seen: make([][]string, n)}
	var err error
	f.dns, err = dnsserver.Start("127.0.0.1")
	require.NoError(t, err)
	t.Cleanup(func() { f.dns.Close() })
	f.origin, err = fleet.StartOrigin("127.0.0.1:0", time.Hour)
	require.NoError(t, err)
	t.Cleanup(func() { f.origin.Close() })
	f.port, err = loopback.FreePort(n)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.startErr(i)
		}()
	}
	wg.Wait()
	for _, e := range errs {
		require.NoError(t, e)
	}
	t.Cleanup(func() {
		for i := range f.procs {
			if f.procs[i] != nil {
				_ = f.procs[i].Stop()
			}
		}
	})
	f.list(n)
	return f
}

// list puts the first n instances in DNS (and only them).
func (f *ownFleet) list(n int, except ...int) {
	f.dns.Reset()
	for i := range n {
		skip := false
		for _, e := range except {
			skip = skip || e == i
		}
		if !skip {
			require.NoError(f.t, f.dns.Add(fmt.Sprintf("%s. 5 IN A %s", f.Name, loopback.Addr(i))))
		}
	}
}

func (f *ownFleet) startErr(i int) error {
	p, err := varnish.Start(context.Background(), varnish.Config{
		VCL:      varnish.VCL{Name: fmt.Sprintf("cdn-%d", i+1), Origin: f.origin.Addr},
		Template: f.tmpl, Listen: fmt.Sprintf("%s:%d", loopback.Addr(i), f.port), Token: f.token,
	})
	if err != nil {
		return err
	}
	f.procs[i] = p
	return nil
}

// Start starts instance i again, on the same address.
func (f *ownFleet) Start(i int) { require.NoError(f.t, f.startErr(i)) }

// Stop stops instance i, keeping what it received.
func (f *ownFleet) Stop(i int) {
	got := f.received(i)
	f.mu.Lock()
	f.seen[i] = append(f.seen[i], got...)
	f.mu.Unlock()
	require.NoError(f.t, f.procs[i].Stop())
	f.procs[i] = nil
}

// Args are serve's flags that find this fleet.
func (f *ownFleet) Args() []string {
	return []string{"--dns-name", f.Name, "--record", "a", "--port", strconv.Itoa(f.port), "--resolver", f.dns.Addr, "--discovery-ttl", "200ms"}
}

// Instance is instance i's address.
func (f *ownFleet) Instance(i int) string { return fmt.Sprintf("%s:%d", loopback.Addr(i), f.port) }

// received lists what instance i's running varnishd received, one
// "METHOD TARGET HOST" line per request.
func (f *ownFleet) received(i int) []string {
	p := f.procs[i]
	if p == nil {
		return nil
	}
	out, err := exec.Command("varnishncsa", "-d", "-n", p.WorkDir(), "-F", "%m %U%q %{Host}i").Output()
	require.NoError(f.t, err)
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// All is everything instance i received, before and after restarts.
func (f *ownFleet) All(i int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(append([]string(nil), f.seen[i]...), f.received(i)...)
}

// missing lists the purges of urls (PURGE, as a browser requests them)
// that instance i has not received.
func (f *ownFleet) missing(i int, urls []string) []string {
	got := map[string]bool{}
	for _, l := range f.All(i) {
		got[l] = true
	}
	var miss []string
	for _, u := range urls {
		pu, err := purge.ParseURL(u)
		require.NoError(f.t, err)
		if line := "PURGE " + pu.Target + " " + pu.Host; !got[line] {
			miss = append(miss, line)
		}
	}
	return miss
}

func urls(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("http://example.com/%s/%d", prefix, i)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
