package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
	"github.com/cdnpurge/cdnpurge/varnish"
)

// The scenarios run against one shared fleet (token required), except those
// that break their fleet. Each scenario uses its own URLs, so they do not
// disturb one another.
//
// Environment:
//
//	CDNPURGE_E2E=require        fail instead of skipping when varnishd is missing
//	CDNPURGE_E2E_MODE=M         auto (default), netns, loopback or external
//	CDNPURGE_E2E_INSTANCES=...  external mode: comma-separated ADDR:PORT of running instances
//	CDNPURGE_E2E_ORIGIN=H:P     external mode: their origin (for hit counts)
//	CDNPURGE_E2E_TOKEN=...      external mode: their purge token
const token = "e2e-s3cret-token"

var (
	sharedOnce  sync.Once
	sharedFleet *Fleet
	sharedErr   error
	sharedToken string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedFleet != nil {
		if err := sharedFleet.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close fleet:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// options reads the environment into fleet options.
func options(t *testing.T, tok string) Options {
	t.Helper()
	mode, err := ParseMode(os.Getenv("CDNPURGE_E2E_MODE"))
	require.NoError(t, err)
	o := Options{N: 3, Mode: mode, Token: tok}
	if ext := os.Getenv("CDNPURGE_E2E_INSTANCES"); ext != "" {
		o.Mode, o.External = ModeExternal, strings.Split(ext, ",")
		o.OriginAddr = os.Getenv("CDNPURGE_E2E_ORIGIN")
	}
	if o.Mode != ModeExternal {
		if _, err := varnish.Lookup(""); err != nil {
			if os.Getenv("CDNPURGE_E2E") == "require" {
				t.Fatalf("CDNPURGE_E2E=require: %v", err)
			}
			t.Skip(err)
		}
	}
	return o
}

func shared(t *testing.T) (*Fleet, string) {
	t.Helper()
	o := options(t, token)
	sharedOnce.Do(func() {
		sharedToken = token
		if o.Mode == ModeExternal {
			sharedToken = os.Getenv("CDNPURGE_E2E_TOKEN")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sharedFleet, sharedErr = Start(ctx, o)
		if sharedErr == nil {
			t.Logf("fleet: %s mode, %d instances on port %d, %s records of %s at %s", sharedFleet.Mode, len(sharedFleet.Members), sharedFleet.Port, strings.ToUpper(string(sharedFleet.Record)), sharedFleet.Name, sharedFleet.DNS.Addr)
		}
	})
	require.NoError(t, sharedErr)
	return sharedFleet, sharedToken
}

// own starts a fleet for one test and stops it when the test ends.
func own(t *testing.T) *Fleet {
	t.Helper()
	o := options(t, token)
	if o.Mode == ModeExternal {
		t.Skip("this scenario stops an instance; it cannot run against an external fleet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Start(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, f.Close()) })
	return f
}

func urlsOf(t *testing.T, raw ...string) []*url.URL {
	t.Helper()
	var out []*url.URL
	for _, r := range raw {
		u, err := purge.ParseURL(r)
		require.NoError(t, err)
		out = append(out, u)
	}
	return out
}

func opts(tok string, header ...string) purge.Options {
	o := purge.Options{Token: tok, Timeout: 10 * time.Second}
	if len(header) == 2 {
		o.Header = http.Header{header[0]: {header[1]}}
	}
	return o
}

// verify checks every instance for every URL and returns the report.
func verify(t *testing.T, f *Fleet, expect purge.Expect, us []*url.URL, header ...string) *purge.VerifyReport {
	t.Helper()
	in, err := purge.Discover(context.Background(), f.Discovery())
	require.NoError(t, err)
	require.Len(t, in, len(f.Members), "discovery finds every instance")
	rep, err := purge.Verify(context.Background(), opts("", header...), expect, in, us)
	require.NoError(t, err)
	return rep
}

func requireAll(t *testing.T, rep *purge.VerifyReport, class cachestatus.Class) {
	t.Helper()
	for _, c := range rep.Checks {
		assert.Equal(t, class, c.Class, "%s on %s: %s %s", c.URL, c.Instance, c.CacheStatus, c.Error)
	}
}

func originHits(t *testing.T, f *Fleet, u *url.URL) int {
	t.Helper()
	if f.Origin == nil {
		return -1
	}
	n, err := f.Origin.Hits(context.Background(), u.Host, purge.RequestTarget(u))
	require.NoError(t, err)
	return n
}

func TestWarmThenHitEverywhere(t *testing.T) {
	f, _ := shared(t)
	us := urlsOf(t, "https://changelog.com/warm/feed")
	requireAll(t, verify(t, f, purge.ExpectMiss, us), cachestatus.Miss)
	rep := verify(t, f, purge.ExpectFresh, us)
	assert.True(t, rep.OK(), rep.Summary())
	requireAll(t, rep, cachestatus.Hit)
	if n := originHits(t, f, us[0]); n >= 0 {
		assert.Equal(t, len(f.Members), n, "each instance fetched once")
	}
}

func TestPurgeThroughLibrary(t *testing.T) {
	f, tok := shared(t)
	us := urlsOf(t, "https://changelog.com/podcast/1")
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)
	before := originHits(t, f, us[0])

	in, err := purge.Discover(context.Background(), f.Discovery())
	require.NoError(t, err)
	rep, err := purge.Run(context.Background(), opts(tok), in, us)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())
	assert.Equal(t, len(f.Members), rep.InstancesOK())

	miss := verify(t, f, purge.ExpectMiss, us)
	assert.True(t, miss.OK(), miss.Summary())
	requireAll(t, miss, cachestatus.Miss)
	hit := verify(t, f, purge.ExpectHit, us)
	assert.True(t, hit.OK(), hit.Summary())
	if before >= 0 {
		assert.Equal(t, before+len(f.Members), originHits(t, f, us[0]), "every instance fetched again, once")
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func cli(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cdnpurge-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "cdnpurge")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/cdnpurge/cdnpurge/cmd/cdnpurge").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build cdnpurge: %v\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

func runCLI(t *testing.T, tok string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(cli(t), args...)
	cmd.Env = append(os.Environ(), "PURGE_TOKEN="+tok)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	require.NoError(t, err)
	return 0, out.String()
}

func TestPurgeThroughCLIBinary(t *testing.T) {
	f, tok := shared(t)
	u := "https://changelog.com/news/42"
	us := urlsOf(t, u)
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)

	args := append([]string{"purge", "--url", u, "--verify=miss,hit"}, f.DiscoveryArgs()...)
	code, out := runCLI(t, tok, args...)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, fmt.Sprintf("purged 1 URL on %d/%d instances", len(f.Members), len(f.Members)))
	assert.Contains(t, out, fmt.Sprintf("verified 1 URL on %d/%d instances: expected miss", len(f.Members), len(f.Members)))
	assert.Contains(t, out, fmt.Sprintf("verified 1 URL on %d/%d instances: expected hit", len(f.Members), len(f.Members)))
	assert.NotContains(t, out, tok)
	if f.Mode == ModeNetns {
		assert.Equal(t, purge.RecordAAAA, f.Record, "netns fleets are found by AAAA, as on Fly.io")
		for _, m := range f.Members {
			assert.Contains(t, out, "["+m.Instance.Host+"]:")
		}
	}
}

func TestWrongOrMissingTokenIsRejectedEverywhere(t *testing.T) {
	f, tok := shared(t)
	if tok == "" {
		t.Skip("the fleet has no purge token")
	}
	u := "https://changelog.com/token/check"
	us := urlsOf(t, u)
	verify(t, f, purge.ExpectAny, us)
	for _, bad := range []string{"", "wrong-token"} {
		code, out := runCLI(t, bad, append([]string{"purge", "--url", u, "--retries", "0", "--format", "json"}, f.DiscoveryArgs()...)...)
		assert.Equal(t, 1, code, out)
		var rep struct {
			Summary string
			Results []purge.Result
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		assert.Contains(t, rep.Summary, fmt.Sprintf("purged 1 URL on 0/%d instances", len(f.Members)))
		require.Len(t, rep.Results, len(f.Members))
		for i, r := range rep.Results {
			assert.Equal(t, 401, r.Status, r.Instance)
			assert.Equal(t, 1, r.Attempts, "401 is not retried")
			assert.Equal(t, f.Members[i].Instance.String(), r.Instance)
		}
		if bad != "" {
			assert.NotContains(t, out, bad)
			assert.Contains(t, rep.Results[0].Error, "token rejected by")
		} else {
			assert.Contains(t, rep.Results[0].Error, "no token was sent")
		}
	}
	rep := verify(t, f, purge.ExpectHit, us)
	assert.True(t, rep.OK(), "content is still cached: %s", rep.Summary())
}

func TestOneInstanceStopped(t *testing.T) {
	f := own(t)
	u := "https://changelog.com/stopped"
	us := urlsOf(t, u)
	verify(t, f, purge.ExpectAny, us)
	require.NoError(t, f.Stop(1))
	dead := f.Members[1].Instance.String()

	code, out := runCLI(t, token, append([]string{"purge", "--url", u, "--retries", "1", "--format", "text"}, f.DiscoveryArgs()...)...)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, fmt.Sprintf("purged 1 URL on %d/%d instances", len(f.Members)-1, len(f.Members)))
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(line, dead):
			assert.Contains(t, line, "connection refused", line)
		case strings.HasPrefix(line, u):
			assert.Contains(t, line, " ok", line)
		}
	}
	// The live instances really were purged.
	live := []purge.Instance{f.Members[0].Instance, f.Members[2].Instance}
	rep, err := purge.Verify(context.Background(), opts(""), purge.ExpectMiss, live, us)
	require.NoError(t, err)
	assert.True(t, rep.OK(), rep.Summary())
}

func TestManyURLsAllPurged(t *testing.T) {
	f, tok := shared(t)
	var raw []string
	for i := 0; i < 500; i++ {
		raw = append(raw, fmt.Sprintf("https://changelog.com/many/%d?page=%d", i, i%7))
	}
	us := urlsOf(t, raw...)
	warm := verify(t, f, purge.ExpectAny, us)
	require.True(t, warm.OK())
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)

	file := filepath.Join(t.TempDir(), "urls.txt")
	require.NoError(t, os.WriteFile(file, []byte("# 500 changed pages\n"+strings.Join(raw, "\n")+"\n"), 0o644))
	code, out := runCLI(t, tok, append([]string{"purge", "--urls-file", file, "--format", "json"}, f.DiscoveryArgs()...)...)
	require.Equal(t, 0, code, out[:min(len(out), 2000)])
	var rep struct {
		OK      bool
		Summary string
		Results []purge.Result
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.True(t, rep.OK)
	assert.Contains(t, rep.Summary, fmt.Sprintf("purged 500 URLs on %d/%d instances", len(f.Members), len(f.Members)))
	assert.Len(t, rep.Results, 500*len(f.Members))

	miss := verify(t, f, purge.ExpectMiss, us)
	assert.True(t, miss.OK(), miss.Summary())
	assert.Len(t, miss.Checks, 500*len(f.Members))
}

func TestPercentEncodedPathAndQueryPurgedExactly(t *testing.T) {
	f, tok := shared(t)
	target := urlsOf(t, "https://changelog.com/a%20b?x=1&y=2")
	siblings := urlsOf(t, "https://changelog.com/a%20b?x=1", "https://changelog.com/a%20b?y=2&x=1", "https://changelog.com/a+b?x=1&y=2")
	all := append(append([]*url.URL{}, target...), siblings...)
	verify(t, f, purge.ExpectAny, all)
	requireAll(t, verify(t, f, purge.ExpectHit, all), cachestatus.Hit)

	in, err := purge.Discover(context.Background(), f.Discovery())
	require.NoError(t, err)
	rep, err := purge.Run(context.Background(), opts(tok), in, target)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())

	requireAll(t, verify(t, f, purge.ExpectMiss, target), cachestatus.Miss)
	requireAll(t, verify(t, f, purge.ExpectHit, siblings), cachestatus.Hit)

	// A space is sent as %20, as a browser sends it: the same cache entry.
	spaced := urlsOf(t, "https://changelog.com/a b?x=1&y=2")
	verify(t, f, purge.ExpectAny, spaced)
	rep, err = purge.Run(context.Background(), opts(tok), in, spaced)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())
	requireAll(t, verify(t, f, purge.ExpectMiss, target), cachestatus.Miss)
}

func TestEveryAcceptEncodingVariantPurged(t *testing.T) {
	f, tok := shared(t)
	us := urlsOf(t, "https://changelog.com/assets/app.js")
	variants := [][]string{nil, {"Accept-Encoding", "gzip"}, {"Accept-Encoding", "br, gzip"}}
	for _, v := range variants {
		verify(t, f, purge.ExpectAny, us, v...)
	}
	for _, v := range variants {
		requireAll(t, verify(t, f, purge.ExpectHit, us, v...), cachestatus.Hit)
	}
	before := originHits(t, f, us[0])
	if before >= 0 {
		assert.Equal(t, 3*len(f.Members), before, "three variants on each instance")
	}

	in, err := purge.Discover(context.Background(), f.Discovery())
	require.NoError(t, err)
	rep, err := purge.Run(context.Background(), opts(tok), in, us)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())

	for _, v := range variants {
		rep := verify(t, f, purge.ExpectMiss, us, v...)
		assert.True(t, rep.OK(), "variant %v: %s", v, rep.Summary())
	}
}

func TestUncacheableIsBypass(t *testing.T) {
	f, _ := shared(t)
	us := urlsOf(t, "https://changelog.com/private/account")
	verify(t, f, purge.ExpectAny, us)
	rep := verify(t, f, purge.ExpectHit, us)
	assert.False(t, rep.OK(), "a private page is never a hit")
	for _, c := range rep.Checks {
		assert.NotEqual(t, cachestatus.Hit, c.Class, c.CacheStatus)
	}
}

// TestExternalFleet runs the harness over instances started elsewhere (here,
// another fleet's), as the Dagger module's e2e does with containers.
func TestExternalFleet(t *testing.T) {
	inner := own(t)
	var addrs []string
	for _, m := range inner.Members {
		addrs = append(addrs, m.Instance.String())
	}
	f, err := Start(context.Background(), Options{Mode: ModeExternal, External: addrs, OriginAddr: inner.Origin.Addr})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, f.Close()) })
	assert.Equal(t, inner.Record, f.Record)
	assert.Equal(t, inner.Instances(), f.Instances())
	us := urlsOf(t, "https://changelog.com/external")
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)
	assert.Equal(t, len(addrs), originHits(t, f, us[0]))
	assert.Error(t, f.Stop(0), "instances started elsewhere cannot be stopped here")

	_, err = Start(context.Background(), Options{Mode: ModeExternal})
	assert.ErrorContains(t, err, "no instances given")
	_, err = Start(context.Background(), Options{Mode: ModeExternal, External: []string{"no-such-host.invalid:80"}})
	assert.ErrorContains(t, err, "no-such-host.invalid")
}

func TestStartFailureStopsWhatItStarted(t *testing.T) {
	o := options(t, "")
	if o.Mode == ModeExternal {
		t.Skip("starts its own fleet")
	}
	o.Varnishd = "false" // exits at once
	_, err := Start(context.Background(), o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited")
	if netnsAvailable() == nil {
		out, err := exec.Command("ip", "netns", "list").Output()
		require.NoError(t, err)
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, fmt.Sprintf("%s%d-", nsPrefix, os.Getpid())) {
				// Only the shared fleet's namespaces may remain.
				require.NotNil(t, sharedFleet, "namespace left behind: %s", line)
				assert.Contains(t, line, sharedFleet.net.id, "namespace left behind: %s", line)
			}
		}
	}
}

// TestSoftPurge: with the VCL's Purge-Soft header, every instance serves the
// old copy once more (stale) while it fetches a fresh one.
func TestSoftPurge(t *testing.T) {
	f, tok := shared(t)
	us := urlsOf(t, "https://changelog.com/soft/1")
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectFresh, us), cachestatus.Hit)

	in, err := purge.Discover(context.Background(), f.Discovery())
	require.NoError(t, err)
	rep, err := purge.Run(context.Background(), opts(tok, "Purge-Soft", "1"), in, us)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())

	stale := verify(t, f, purge.ExpectStale, us)
	assert.True(t, stale.OK(), stale.Summary())
	requireAll(t, stale, cachestatus.Stale)
	fresh, err := purge.VerifyUntil(context.Background(), opts(""), purge.ExpectFresh, in, us, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, err)
	assert.True(t, fresh.OK(), fresh.Summary())
}
