package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/purge"
)

// Caches other than Varnish that users purge the same way: nginx with the
// cache_purge module and Squid, from Debian's packages (ci/deps.sh installs
// them), each a real process on a port the kernel chose, in front of the
// test origin, stopped when the test ends.

// cacheProc is a cache process a test started.
type cacheProc struct {
	addr string // 127.0.0.1:PORT
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	out  bytes.Buffer
}

// needProgram skips t (or fails it under CDNPURGE_E2E=require) when path is
// missing.
func needProgram(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if fleettest.Required() {
			t.Fatalf("CDNPURGE_E2E=require: %s is not installed (apt-get install -y %s, or bash ci/deps.sh)", path, pkg)
		}
		t.Skipf("%s is not installed (apt-get install -y %s)", path, pkg)
	}
}

// render writes testdata/name, a text/template, rendered with v, to dir.
func render(t *testing.T, name, dir string, v any) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	tmpl, err := template.New(name).Option("missingkey=error").Parse(string(b))
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, tmpl.Execute(&out, v))
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
	return path
}

// procDir makes the directory of a cache process; its workers run as
// unprivileged users (nobody, proxy) and write there.
func procDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cdnpurge-cache-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o777))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// start runs cmd in a process group of its own, stopped (the whole group)
// when t ends.
func (p *cacheProc) start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	p.cmd, p.done = cmd, make(chan struct{})
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
}

func (p *cacheProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// exited says whether the process has ended.
func (p *cacheProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitServing polls until the cache answers a request (the origin's hit
// counts, which it passes on uncached), or fails t with what it printed.
func (p *cacheProc) waitServing(t *testing.T, logFile string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+fleet.HitsPath, nil)
		req.Host = "ready.example"
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if p.exited() || time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("%s is not serving on %s (exited: %v):\n%s\n%s", p.cmd.Path, p.addr, p.exited(), p.out.String(), log)
		}
		time.Sleep(20 * time.Millisecond) // polling readiness, with a deadline
	}
}

// startNginx starts nginx with the cache_purge module in front of origin,
// on a listening socket the kernel chose and the test hands over (nginx
// takes inherited sockets from $NGINX).
func startNginx(t *testing.T, origin string) *cacheProc {
	t.Helper()
	needProgram(t, "/usr/sbin/nginx", "nginx")
	needProgram(t, "/usr/lib/nginx/modules/ngx_http_cache_purge_module.so", "libnginx-mod-http-cache-purge")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	require.NoError(t, err)
	defer f.Close()
	p := &cacheProc{addr: l.Addr().String(), dir: procDir(t)}
	conf := render(t, "nginx-cache-purge.conf", p.dir, map[string]string{"Dir": p.dir, "Listen": p.addr, "Origin": origin})
	cmd := exec.Command("/usr/sbin/nginx", "-p", p.dir, "-c", conf, "-e", filepath.Join(p.dir, "error.log"))
	cmd.ExtraFiles = []*os.File{f} // fd 3
	cmd.Env = append(os.Environ(), "NGINX=3;")
	p.start(t, cmd)
	p.waitServing(t, filepath.Join(p.dir, "error.log"))
	return p
}

// startSquid starts Squid in front of origin. Squid cannot take a port
// from the kernel: a free one is asked for, and another is tried when
// Squid finds it taken.
func startSquid(t *testing.T, origin string) *cacheProc {
	t.Helper()
	needProgram(t, "/usr/sbin/squid", "squid")
	oh, op, err := net.SplitHostPort(origin)
	require.NoError(t, err)
	for try := 0; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		require.NoError(t, l.Close())
		p := &cacheProc{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: procDir(t)}
		conf := render(t, "squid.conf", p.dir, map[string]any{"Dir": p.dir, "Port": port, "OriginHost": oh, "OriginPort": op})
		p.start(t, exec.Command("/usr/sbin/squid", "-N", "-f", conf))
		logFile := filepath.Join(p.dir, "cache.log")
		if err := waitLog(p, logFile, fmt.Sprintf("local=127.0.0.1:%d ", port)); err != nil {
			if log, _ := os.ReadFile(logFile); bytes.Contains(log, []byte("Address already in use")) && try < 5 {
				p.stop()
				continue // another process took the port meanwhile
			}
			log, _ := os.ReadFile(logFile)
			t.Fatalf("squid: %v\n%s\n%s", err, p.out.String(), log)
		}
		p.waitServing(t, logFile)
		return p
	}
}

// waitLog polls file until it says line (Squid's "Accepting ... at
// local=ADDR"), or the process exits.
func waitLog(p *cacheProc, file, line string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(file); err == nil && strings.Contains(string(b), line) {
			return nil
		}
		switch {
		case p.exited():
			return errors.New("exited before listening")
		case time.Now().After(deadline):
			return errors.New("not listening after 30s")
		}
		time.Sleep(20 * time.Millisecond) // polling a log, with a deadline
	}
}

// startOrigin serves the test origin on loopback for t.
func startOrigin(t *testing.T) *fleet.Origin {
	t.Helper()
	o, err := fleet.StartOrigin("127.0.0.1:0", time.Hour)
	require.NoError(t, err)
	t.Cleanup(func() { o.Close() })
	return o
}

// hits is how often o was asked for u.
func hits(t *testing.T, o *fleet.Origin, host, target string) int {
	t.Helper()
	n, err := o.Hits(context.Background(), host, target)
	require.NoError(t, err)
	return n
}

// TestWorksWithNginxCachePurge: nginx's cache_purge in its "separate
// location" form is purged with --method GET to the purge location; it
// answers 404 when nothing was cached (--ok-status 404); verify reads
// X-Cache-Status.
func TestWorksWithNginxCachePurge(t *testing.T) {
	t.Parallel()
	origin := startOrigin(t)
	a, b := startNginx(t, origin.Addr), startNginx(t, origin.Addr)
	inst := []string{"--instance", a.addr, "--instance", b.addr}
	page := "https://nginx.example/docs/page"

	r := runCLI(t, "", append([]string{"verify", "--url", page, "--expect", "miss"}, inst...)...)
	require.Equal(t, 0, r.code, r)
	r = runCLI(t, "", append([]string{"verify", "--url", page, "--expect", "fresh", "--format", "json"}, inst...)...)
	require.Equal(t, 0, r.code, r)
	var v verifyJSON
	decodeJSON(t, r.stdout, &v)
	for _, c := range v.Results {
		assert.Equal(t, "hit", c.Class)
		assert.Equal(t, "x-cache-status", c.Source)
		assert.Equal(t, "HIT", c.CacheStatus)
	}

	// nginx keeps one entry per variant (the origin varies on
	// Accept-Encoding), and the purge removes the one its own request
	// names: without Accept-Encoding, none is there (404), and verify,
	// asking as a browser, finds the browser's copy still served.
	purgeArgs := append([]string{"purge", "--method", "GET", "--url", "https://nginx.example/purge/docs/page",
		"--verify-url", page, "--verify", "--ok-status", "404", "--format", "json"}, inst...)
	r = runCLI(t, "", purgeArgs...)
	require.Equal(t, 1, r.code, r)
	var plain outcomeJSON
	decodeJSON(t, r.stdout, &plain)
	for _, res := range plain.Purge.Results {
		assert.Equal(t, 404, res.Status)
	}
	for _, c := range plain.Verify[0].Results {
		assert.False(t, c.OK, "%+v", c)
		assert.Equal(t, "hit", c.Class)
	}
	// Purged with the browser's Accept-Encoding: that variant goes.
	r = runCLI(t, "", append(purgeArgs, "--header", "Accept-Encoding: "+purge.DefaultVerifyAcceptEncoding)...)
	require.Equal(t, 0, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	for _, res := range o.Purge.Results {
		assert.Equal(t, 200, res.Status)
	}
	for _, c := range o.Verify[0].Results {
		assert.Equal(t, "miss", c.Class, "%+v", c)
		assert.True(t, c.OK)
	}
	assert.Equal(t, 4, hits(t, origin, "nginx.example", "/docs/page"), "fetched again on each instance")

	// Nothing cached there: 404, which --ok-status 404 accepts.
	never := append([]string{"purge", "--method", "GET", "--url", "https://nginx.example/purge/never"}, inst...)
	r = runCLI(t, "", never...)
	assert.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stdout, "404")
	r = runCLI(t, "", append(never, "--ok-status", "404")...)
	assert.Equal(t, 0, r.code, r)

	// A GET's URL is the purge location, not the page: verifying it would
	// prove nothing, so the page must be named (exit 2, nothing sent).
	r = runCLI(t, "", append([]string{"purge", "--method", "GET", "--url", "https://nginx.example/purge/docs/page", "--verify"}, inst...)...)
	assert.Equal(t, 2, r.code, r)
	assert.Contains(t, r.stderr, "give the URLs to verify")
}

// TestWorksWithSquid: Squid's PURGE from an allowed address answers 200
// when it removed the object and 404 when nothing was cached (--ok-status
// 404); verify reads X-Cache and Age.
func TestWorksWithSquid(t *testing.T) {
	t.Parallel()
	origin := startOrigin(t)
	a, b := startSquid(t, origin.Addr), startSquid(t, origin.Addr)
	inst := []string{"--instance", a.addr, "--instance", b.addr}
	page := "https://squid.example/docs/page"

	r := runCLI(t, "", append([]string{"verify", "--url", page, "--expect", "miss"}, inst...)...)
	require.Equal(t, 0, r.code, r)
	r = runCLI(t, "", append([]string{"verify", "--url", page, "--expect", "fresh", "--format", "json"}, inst...)...)
	require.Equal(t, 0, r.code, r)
	var v verifyJSON
	decodeJSON(t, r.stdout, &v)
	for _, c := range v.Results {
		assert.Equal(t, "hit", c.Class)
		assert.Equal(t, "x-cache", c.Source)
		assert.Equal(t, "HIT from cdnpurge-squid", c.CacheStatus)
		assert.NotNil(t, c.Age)
	}

	// Squid keeps one entry per variant (the origin varies on
	// Accept-Encoding) and PURGE removes the one its request names: a
	// plain PURGE finds none (404), and verify catches the browser's copy.
	purgeArgs := append([]string{"purge", "--url", page, "--ok-status", "404", "--verify", "--format", "json"}, inst...)
	r = runCLI(t, "", purgeArgs...)
	require.Equal(t, 1, r.code, r)
	var plain outcomeJSON
	decodeJSON(t, r.stdout, &plain)
	for _, res := range plain.Purge.Results {
		assert.Equal(t, 404, res.Status)
	}
	for _, c := range plain.Verify[0].Results {
		assert.False(t, c.OK, "%+v", c)
	}
	r = runCLI(t, "", append(purgeArgs, "--header", "Accept-Encoding: "+purge.DefaultVerifyAcceptEncoding)...)
	require.Equal(t, 0, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	for _, res := range o.Purge.Results {
		assert.Equal(t, 200, res.Status)
	}
	for _, c := range o.Verify[0].Results {
		assert.Equal(t, "miss", c.Class, "%+v", c)
	}
	assert.Equal(t, 4, hits(t, origin, "squid.example", "/docs/page"), "fetched again on each instance")

	never := append([]string{"purge", "--url", "https://squid.example/never"}, inst...)
	r = runCLI(t, "", never...)
	assert.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stdout, "the instance found nothing to purge there")
	assert.Contains(t, r.stderr, "hint: if the VCL answers 404 when nothing was cached, add --ok-status 404")
	r = runCLI(t, "", append(never, "--ok-status", "404")...)
	assert.Equal(t, 0, r.code, r)
}
