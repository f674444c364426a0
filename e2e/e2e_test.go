// Package e2e runs cdnpurge end to end against real varnishd fleets (see
// package fleet): the library, the CLI binary, and the cache evidence of the
// VCLs people run (styles_test.go). It holds tests only.
//
// The environment chooses the fleets (see package fleettest):
//
//	CDNPURGE_E2E=require        fail instead of skipping when varnishd or vmod xkey is missing
//	CDNPURGE_E2E_MODE=M         auto (default), netns, loopback or external
//	CDNPURGE_E2E_INSTANCES=...  external mode: comma-separated ADDR:PORT of running instances
//	CDNPURGE_E2E_ORIGIN=H:P     external mode: their origin (for hit counts)
//	CDNPURGE_E2E_TOKEN=...      external mode: their purge token
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
	"github.com/cdnpurge/cdnpurge/varnish"
)

// token is the purge token of the fleets these tests start.
const token = "e2e-s3cret-token"

// The scenarios run against one shared fleet (token required), except those
// that break their fleet or need another VCL. Each scenario uses its own
// URLs, so they do not disturb one another.
var (
	sharedOnce  sync.Once
	sharedFleet *fleet.Fleet
	sharedErr   error
	sharedToken string
)

// The CLI binary, built once into binDir, which TestMain removes.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedFleet != nil {
		if err := sharedFleet.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close the shared fleet:", err)
			code = 1
		}
	}
	if binDir != "" {
		if err := os.RemoveAll(binDir); err != nil {
			fmt.Fprintln(os.Stderr, "remove the CLI binary:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// shared returns the fleet most scenarios share, and its token.
func shared(t *testing.T) (*fleet.Fleet, string) {
	t.Helper()
	o := fleettest.Options(t, fleet.Options{N: 3, Token: token})
	sharedOnce.Do(func() {
		sharedToken = o.Token
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sharedFleet, sharedErr = fleet.Start(ctx, o)
		if sharedErr == nil {
			t.Logf("shared %s", sharedFleet)
		}
	})
	require.NoError(t, sharedErr, "start the shared fleet")
	return sharedFleet, sharedToken
}

// runs counts the runs of each test in this process (go test -count=N).
var runs sync.Map // test name -> *atomic.Int32

// site is the scheme and host of a test's URLs, its own in each run, so
// that a second run (-count=2) meets no copy the first left in the shared
// fleet.
func site(t *testing.T) string {
	v, _ := runs.LoadOrStore(t.Name(), new(atomic.Int32))
	if n := v.(*atomic.Int32).Add(1); n > 1 {
		return fmt.Sprintf("https://run%d.changelog.com", n)
	}
	return "https://changelog.com"
}

// own starts a fleet of 3 for one test (which may break it) and stops it
// when the test ends.
func own(t *testing.T) *fleet.Fleet {
	t.Helper()
	o := fleettest.Options(t, fleet.Options{N: 3, Token: token})
	if o.Mode == fleet.ModeExternal {
		t.Skip("this scenario starts and breaks its own fleet; it cannot run against an external one")
	}
	return fleettest.Start(t, o)
}

// job is a job that finds f's instances, with a timeout generous enough
// for a loaded CI machine.
func job(f *fleet.Fleet, urls ...string) purge.Job {
	j := f.Job()
	j.URLs = urls
	j.Timeout = 10 * time.Second
	return j
}

// run runs j and fails t when it cannot run at all.
func run(t *testing.T, j purge.Job) *purge.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := j.Run(ctx)
	require.NoError(t, err)
	return out
}

// verify asks every instance of f for every URL and returns the report.
func verify(t *testing.T, f *fleet.Fleet, expect purge.Expect, urls []string, header ...string) *purge.Report {
	t.Helper()
	j := job(f, urls...)
	j.VerifyOnly, j.Verify, j.Headers = true, []purge.Expect{expect}, header
	out := run(t, j)
	require.Len(t, out.Instances, len(f.Members), "discovery finds every instance")
	require.Len(t, out.Verify, 1)
	return out.Verify[0]
}

// purgeURLs purges urls on every instance of f through the library.
func purgeURLs(t *testing.T, f *fleet.Fleet, tok string, urls ...string) *purge.Report {
	t.Helper()
	j := job(f, urls...)
	j.Token = tok
	out := run(t, j)
	require.Len(t, out.Instances, len(f.Members), "discovery finds every instance")
	require.NotNil(t, out.Purge)
	return out.Purge
}

// results renders every result of r.
func results(r *purge.Report) []purge.Result {
	out := make([]purge.Result, r.Len())
	for k := range out {
		out[k] = r.Result(k)
	}
	return out
}

// requireAll checks that every check of rep saw class.
func requireAll(t *testing.T, rep *purge.Report, class cachestatus.Class) {
	t.Helper()
	for _, c := range results(rep) {
		assert.Equal(t, class, c.Class, "%s on %s: %s %q (%s) %v", c.URL, c.Instance, c.Source, c.CacheStatus, c.Note, c.Err)
	}
}

// originHits is how often f's origin was asked for u; -1 when the fleet's
// origin is unknown (an external fleet started without one).
func originHits(t *testing.T, f *fleet.Fleet, u string) int {
	t.Helper()
	if f.Origin == nil {
		return -1
	}
	pu, err := purge.ParseURL(u)
	require.NoError(t, err)
	n, err := f.Origin.Hits(context.Background(), pu.Host, pu.Target)
	require.NoError(t, err)
	return n
}

// cli returns the CLI binary, built once for the package's tests.
func cli(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "cdnpurge-e2e-bin-")
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

// cliRun is what one run of the binary did.
type cliRun struct {
	code           int
	stdout, stderr string
}

func (r cliRun) String() string {
	const most = 3000
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout[:min(len(r.stdout), most)], r.stderr[:min(len(r.stderr), most)])
}

// runCLI runs the binary with PURGE_TOKEN=tok.
func runCLI(t *testing.T, tok string, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli(t), args...)
	cmd.Env = append(os.Environ(), "PURGE_TOKEN="+tok)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
		return r
	}
	require.NoError(t, err)
	return r
}

// The JSON reports, validated against report.schema.json and decoded
// strictly (reporttest): a renamed, missing or unexpected field fails.

// oneStep is a report of one step (a purge, or a verify): the step, and
// the run's instances, skipped machines and warnings.
type oneStep struct {
	reporttest.Step
	Instances []string
	Skipped   []reporttest.Skipped
	Warnings  []string
}

// purgeJSON is a purge-only report; verifyJSON a verify-only one.
type (
	purgeJSON  oneStep
	verifyJSON oneStep
)

// outcomeJSON is a purge followed by verify steps.
type outcomeJSON struct {
	*reporttest.Report
	Purge  *reporttest.Step
	Verify []reporttest.Step
}

// decodeJSON validates the report out and decodes it into v: a
// *purgeJSON, *verifyJSON or *outcomeJSON.
func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	rep := reporttest.Require(t, out)
	one := func(step string) oneStep {
		s := rep.Only(t)
		require.Equal(t, step, s.Name)
		require.Equal(t, rep.OK, s.OK, "a run of one step is ok when its step is")
		require.Equal(t, rep.Summary, s.Summary, "a run of one step says its step's summary")
		return oneStep{Step: *s, Instances: rep.Instances, Skipped: rep.Skipped, Warnings: rep.Warnings}
	}
	switch v := v.(type) {
	case *purgeJSON:
		*v = purgeJSON(one("purge"))
	case *verifyJSON:
		*v = verifyJSON(one("verify"))
	case *outcomeJSON:
		*v = outcomeJSON{Report: rep, Purge: rep.Purge(), Verify: rep.Verify()}
	default:
		t.Fatalf("decodeJSON into %T", v)
	}
}

// requireKeys checks that every object of list has these keys (the ones
// written even when empty).
func requireKeys(t *testing.T, raw string, path []any, keys ...string) {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(raw), &v))
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			require.True(t, ok, "%s is not an object", p)
			v = m[p]
		case int:
			l, ok := v.([]any)
			require.True(t, ok, "%d: not a list", p)
			require.Greater(t, len(l), p)
			v = l[p]
		}
	}
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	require.NotEmpty(t, list, "%v", path)
	for _, it := range list {
		m, ok := it.(map[string]any)
		require.True(t, ok)
		for _, k := range keys {
			assert.Contains(t, m, k, "%v", path)
		}
	}
}

func TestWarmThenHitEverywhere(t *testing.T) {
	f, _ := shared(t)
	us := []string{site(t) + "/warm/feed"}
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
	us := []string{site(t) + "/podcast/1"}
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)
	before := originHits(t, f, us[0])

	rep := purgeURLs(t, f, tok, us...)
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

func TestPurgeThroughCLIBinary(t *testing.T) {
	f, tok := shared(t)
	u := site(t) + "/news/42"
	us := []string{u}
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)

	r := runCLI(t, tok, append([]string{"purge", "--url", u, "--verify=miss,hit"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	n := len(f.Members)
	assert.Contains(t, r.stdout, fmt.Sprintf("purged 1 URL on %d/%d instances", n, n))
	assert.Contains(t, r.stdout, fmt.Sprintf("verified 1 URL on %d/%d instances: expected miss", n, n))
	assert.Contains(t, r.stdout, fmt.Sprintf("verified 1 URL on %d/%d instances: expected hit", n, n))
	if tok != "" {
		assert.NotContains(t, r.stdout+r.stderr, tok)
	}
	if f.Mode == fleet.ModeNetns {
		assert.Equal(t, purge.RecordAAAA, f.Record, "netns fleets are found by AAAA, as on Fly.io")
		for _, m := range f.Members {
			assert.Contains(t, r.stdout, "["+m.Instance.Host+"]:")
		}
	}
}

// TestJSONShapes: the JSON field names are stable: a purge-only report, a
// verify-only report, and a purge with verify steps.
func TestJSONShapes(t *testing.T) {
	f, tok := shared(t)
	u := site(t) + "/json/shapes"
	n := len(f.Members)

	r := runCLI(t, tok, append([]string{"verify", "--url", u, "--expect", "any", "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var v verifyJSON
	decodeJSON(t, r.stdout, &v)
	assert.True(t, v.OK)
	assert.Equal(t, "verify", v.Name)
	assert.Equal(t, "any", v.Expect)
	assert.Equal(t, "HEAD", v.Method)
	assert.Equal(t, 1, v.Rounds)
	assert.Equal(t, []string{u}, v.URLs)
	assert.Len(t, v.Instances, n)
	require.Len(t, v.Results, n)
	for _, c := range v.Results {
		assert.True(t, c.OK)
		assert.Equal(t, 200, c.Status)
		assert.Equal(t, 1, c.Attempts)
		assert.NotEmpty(t, c.Class)
	}
	requireKeys(t, r.stdout, nil, "format_version", "ok", "summary", "dry_run", "instances", "skipped", "warnings", "steps")
	requireKeys(t, r.stdout, []any{"steps"}, "step", "method", "expect", "ok", "summary", "duration_ms", "rounds", "request_headers", "urls", "results")
	requireKeys(t, r.stdout, []any{"steps", 0, "results"}, "url", "instance", "status", "ok", "attempts", "duration_ms", "class", "bytes_read")

	r = runCLI(t, tok, append([]string{"purge", "--url", u, "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var p purgeJSON
	decodeJSON(t, r.stdout, &p)
	assert.True(t, p.OK)
	assert.Equal(t, "purge", p.Name)
	assert.Equal(t, "PURGE", p.Method)
	require.Len(t, p.Results, n)
	for _, res := range p.Results {
		assert.Equal(t, u, res.URL)
		assert.Equal(t, 200, res.Status)
		assert.True(t, res.OK)
		assert.Equal(t, 1, res.Attempts)
		assert.Empty(t, res.Error)
	}
	requireKeys(t, r.stdout, nil, "format_version", "ok", "summary", "dry_run", "instances", "skipped", "warnings", "steps")
	requireKeys(t, r.stdout, []any{"steps"}, "step", "method", "ok", "summary", "duration_ms", "request_headers", "urls", "results")
	requireKeys(t, r.stdout, []any{"steps", 0, "results"}, "url", "instance", "status", "ok", "attempts", "duration_ms")

	r = runCLI(t, tok, append([]string{"purge", "--url", u, "--verify=miss,hit", "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	assert.True(t, o.OK)
	assert.Equal(t, o.Purge.Summary+"; then "+o.Verify[0].Summary+"; then "+o.Verify[1].Summary, o.Summary)
	require.NotNil(t, o.Purge)
	assert.Len(t, o.Purge.Results, n)
	require.Len(t, o.Verify, 2)
	assert.Equal(t, "miss", o.Verify[0].Expect)
	assert.Equal(t, "hit", o.Verify[1].Expect)
	for _, c := range o.Verify[1].Results {
		assert.Equal(t, "hit", c.Class)
		assert.NotNil(t, c.Age, "a hit carries its Age")
		assert.NotEmpty(t, c.Source)
	}
	requireKeys(t, r.stdout, nil, "format_version", "ok", "summary", "dry_run", "instances", "skipped", "warnings", "steps")
	for i := range 3 {
		requireKeys(t, r.stdout, []any{"steps", i, "results"}, "url", "instance", "status", "ok", "attempts", "duration_ms")
	}
}

func TestWrongOrMissingTokenIsRejectedEverywhere(t *testing.T) {
	f, tok := shared(t)
	if tok == "" {
		t.Skip("the fleet has no purge token")
	}
	u := site(t) + "/token/check"
	us := []string{u}
	verify(t, f, purge.ExpectAny, us)
	for _, bad := range []string{"", "wrong-token"} {
		r := runCLI(t, bad, append([]string{"purge", "--url", u, "--retries", "0", "--format", "json"}, f.Args()...)...)
		assert.Equal(t, 1, r.code, r)
		var rep purgeJSON
		decodeJSON(t, r.stdout, &rep)
		assert.False(t, rep.OK)
		assert.Contains(t, rep.Summary, fmt.Sprintf("purged 0 of %d (1 URL x %d instances)", len(f.Members), len(f.Members)))
		require.Len(t, rep.Results, len(f.Members))
		for i, res := range rep.Results {
			assert.Equal(t, 401, res.Status, res.Instance)
			assert.False(t, res.OK)
			assert.Equal(t, 1, res.Attempts, "401 is not retried")
			assert.Equal(t, f.Members[i].Instance.String(), res.Instance)
			assert.True(t, strings.HasPrefix(res.Error, "401 "), res.Error)
			if bad != "" {
				assert.Contains(t, res.Error, ": "+purge.ErrTokenRejected.Error())
			} else {
				assert.Contains(t, res.Error, ": "+purge.ErrNoToken.Error())
			}
		}
		if bad != "" {
			assert.NotContains(t, r.stdout+r.stderr, bad)
			assert.Contains(t, r.stderr, "hint: the purge token was refused")
		} else {
			assert.Contains(t, r.stderr, "hint: the instances want a purge token")
		}
	}
	rep := verify(t, f, purge.ExpectHit, us)
	assert.True(t, rep.OK(), "content is still cached: %s", rep.Summary())
}

func TestOneInstanceStopped(t *testing.T) {
	f := own(t)
	u := site(t) + "/stopped"
	us := []string{u}
	verify(t, f, purge.ExpectAny, us)
	require.NoError(t, f.Stop(1))
	dead := f.Members[1].Instance.String()

	r := runCLI(t, token, append([]string{"purge", "--url", u, "--retries", "1", "--format", "text"}, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stdout, fmt.Sprintf("purged %d of %d (1 URL x %d instances)", len(f.Members)-1, len(f.Members), len(f.Members)))
	assert.Contains(t, r.stdout, "1 failed, 1 of them not sent", "a refused connection carried nothing")
	rows := 0
	for _, line := range strings.Split(r.stdout, "\n") {
		switch {
		case strings.Contains(line, dead):
			rows++
			// The reason, too long for the column, follows the table.
			ref := regexp.MustCompile(`FAILED (\[\d+\])$`).FindStringSubmatch(line)
			if assert.NotNil(t, ref, line) {
				assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(ref[1])+` not sent: connection refused`, r.stdout)
			}
		case strings.HasPrefix(line, u):
			rows++
			assert.Contains(t, line, " ok", line)
		}
	}
	assert.Equal(t, len(f.Members), rows, "a row per instance:\n%s", r.stdout)
	// The live instances really were purged.
	j := purge.Job{Instances: []string{f.Members[0].Instance.String(), f.Members[2].Instance.String()},
		URLs: us, VerifyOnly: true, Verify: []purge.Expect{purge.ExpectMiss}, Timeout: 10 * time.Second}
	out := run(t, j)
	assert.True(t, out.OK(), out.Verify[0].Summary())
	requireAll(t, out.Verify[0], cachestatus.Miss)
}

func TestManyURLsAllPurged(t *testing.T) {
	f, tok := shared(t)
	var us []string
	base := site(t)
	for i := range 500 {
		us = append(us, fmt.Sprintf("%s/many/%d?page=%d", base, i, i%7))
	}
	warm := verify(t, f, purge.ExpectAny, us)
	require.True(t, warm.OK(), warm.Summary())
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)

	file := filepath.Join(t.TempDir(), "urls.txt")
	require.NoError(t, os.WriteFile(file, []byte("# 500 changed pages\n"+strings.Join(us, "\n")+"\n"), 0o644))
	r := runCLI(t, tok, append([]string{"purge", "--urls-file", file, "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var rep purgeJSON
	decodeJSON(t, r.stdout, &rep)
	assert.True(t, rep.OK)
	assert.Contains(t, rep.Summary, fmt.Sprintf("purged 500 URLs on %d/%d instances", len(f.Members), len(f.Members)))
	assert.Len(t, rep.Results, 500*len(f.Members))
	for _, res := range rep.Results {
		if !res.OK || res.Status != 200 {
			t.Errorf("%s on %s: %d %s", res.URL, res.Instance, res.Status, res.Error)
		}
	}

	miss := verify(t, f, purge.ExpectMiss, us)
	assert.True(t, miss.OK(), miss.Summary())
	assert.Equal(t, 500*len(f.Members), miss.Len())
}

func TestPercentEncodedPathAndQueryPurgedExactly(t *testing.T) {
	f, tok := shared(t)
	base := site(t)
	target := []string{base + "/a%20b?x=1&y=2"}
	siblings := []string{base + "/a%20b?x=1", base + "/a%20b?y=2&x=1", base + "/a+b?x=1&y=2"}
	all := append(slices.Clone(target), siblings...)
	verify(t, f, purge.ExpectAny, all)
	requireAll(t, verify(t, f, purge.ExpectHit, all), cachestatus.Hit)

	rep := purgeURLs(t, f, tok, target...)
	require.True(t, rep.OK(), rep.Summary())
	assert.Equal(t, "/a%20b?x=1&y=2", rep.URLs.At(0).Target, "sent exactly as written: it is already canonical")

	requireAll(t, verify(t, f, purge.ExpectMiss, target), cachestatus.Miss)
	requireAll(t, verify(t, f, purge.ExpectHit, siblings), cachestatus.Hit)

	// A space is sent as %20, as a browser sends it: the same cache entry.
	spaced := []string{base + "/a b?x=1&y=2"}
	verify(t, f, purge.ExpectAny, spaced)
	rep = purgeURLs(t, f, tok, spaced...)
	require.True(t, rep.OK(), rep.Summary())
	assert.Equal(t, "/a%20b?x=1&y=2", rep.URLs.At(0).Target)
	requireAll(t, verify(t, f, purge.ExpectMiss, target), cachestatus.Miss)
	// The siblings were never touched.
	requireAll(t, verify(t, f, purge.ExpectHit, siblings), cachestatus.Hit)
}

func TestEveryAcceptEncodingVariantPurged(t *testing.T) {
	f, tok := shared(t)
	us := []string{site(t) + "/assets/app.js"}
	// A browser's (br), gzip, and none (verify sends a browser's unless told).
	variants := [][]string{nil, {"Accept-Encoding: gzip"}, {"Accept-Encoding: identity"}}
	for _, v := range variants {
		verify(t, f, purge.ExpectAny, us, v...)
	}
	for _, v := range variants {
		requireAll(t, verify(t, f, purge.ExpectHit, us, v...), cachestatus.Hit)
	}
	if before := originHits(t, f, us[0]); before >= 0 {
		assert.Equal(t, 3*len(f.Members), before, "three variants on each instance")
	}

	rep := purgeURLs(t, f, tok, us...)
	require.True(t, rep.OK(), rep.Summary())

	for _, v := range variants {
		rep := verify(t, f, purge.ExpectMiss, us, v...)
		assert.True(t, rep.OK(), "variant %v: %s", v, rep.Summary())
	}
}

func TestUncacheableIsBypass(t *testing.T) {
	f, _ := shared(t)
	us := []string{site(t) + "/private/account"}
	verify(t, f, purge.ExpectAny, us)
	rep := verify(t, f, purge.ExpectHit, us)
	assert.False(t, rep.OK(), "a private page is never a hit")
	for _, c := range results(rep) {
		assert.False(t, c.Class.IsHit(), "%s %q", c.Source, c.CacheStatus)
		// The shipped VCL says fwd=miss for what the origin forbids caching.
		assert.Contains(t, []cachestatus.Class{cachestatus.Miss, cachestatus.Bypass}, c.Class, "%s %q", c.Source, c.CacheStatus)
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
	f := fleettest.Start(t, fleet.Options{Mode: fleet.ModeExternal, External: addrs, OriginAddr: inner.Origin.Addr})
	assert.Equal(t, inner.Record, f.Record)
	assert.Equal(t, inner.Instances(), f.Instances())
	us := []string{site(t) + "/external"}
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)
	assert.Equal(t, len(addrs), originHits(t, f, us[0]))
	assert.Error(t, f.Stop(0), "instances started elsewhere cannot be stopped here")

	_, err := fleet.Start(context.Background(), fleet.Options{Mode: fleet.ModeExternal})
	assert.ErrorContains(t, err, "no instances given")
	_, err = fleet.Start(context.Background(), fleet.Options{Mode: fleet.ModeExternal, External: []string{"no-such-host.invalid:80"}})
	assert.ErrorContains(t, err, "no-such-host.invalid")
}

// TestExternalFleetMixedFamilies: an external fleet whose instances are on
// IPv4 and IPv6 is listed by SRV records, and one lookup finds it whole.
func TestExternalFleetMixedFamilies(t *testing.T) {
	o := fleettest.Options(t, fleet.Options{N: 2, Token: token, Mode: fleet.ModeLoopback})
	if o.Mode == fleet.ModeExternal {
		t.Skip("starts its own instances")
	}
	inner := fleettest.Start(t, o)
	v6 := startOnIPv6Loopback(t, inner.Origin.Addr)

	addrs := []string{v6.Addr}
	for _, m := range inner.Members {
		addrs = append(addrs, m.Instance.String())
	}
	f := fleettest.Start(t, fleet.Options{Mode: fleet.ModeExternal, External: addrs, OriginAddr: inner.Origin.Addr})
	assert.Equal(t, purge.RecordSRV, f.Record, "mixed families are listed by SRV")

	u := site(t) + "/mixed/families"
	plan, err := job(f, u).Plan(context.Background())
	require.NoError(t, err)
	var found []string
	for _, in := range plan.Instances {
		found = append(found, in.String())
	}
	assert.ElementsMatch(t, addrs, found, "discovery finds every instance, IPv4 and IPv6")

	verify(t, f, purge.ExpectAny, []string{u})
	requireAll(t, verify(t, f, purge.ExpectHit, []string{u}), cachestatus.Hit)
	r := runCLI(t, token, append([]string{"purge", "--url", u, "--verify=miss", "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var out outcomeJSON
	decodeJSON(t, r.stdout, &out)
	require.NotNil(t, out.Purge)
	assert.ElementsMatch(t, addrs, out.Instances)
	assert.Equal(t, 2*len(addrs), originHits(t, f, u), "every instance, IPv6 too, fetched once to warm and once after the purge")
}

// startOnIPv6Loopback starts one varnishd running the shipped VCL on [::1]
// and stops it when the test ends.
func startOnIPv6Loopback(t *testing.T, origin string) *varnish.Process {
	t.Helper()
	var p *varnish.Process
	var err error
	// Another process may take the port between the check and varnishd's
	// bind: try a few.
	for try := 0; try < 5; try++ {
		l, lerr := net.Listen("tcp", "[::1]:0")
		if lerr != nil {
			t.Skipf("no IPv6 loopback: %v", lerr)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		p, err = varnish.Start(ctx, varnish.Config{
			VCL:    varnish.VCL{Name: "cdn-v6", Origin: origin},
			Listen: net.JoinHostPort("::1", strconv.Itoa(port)),
			Token:  token,
		})
		cancel()
		if err == nil {
			break
		}
	}
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Stop()) })
	return p
}

// TestStartFailureStopsWhatItStarted: a fleet whose varnishd fails to start
// leaves nothing of its own behind: no state directory, no namespace, no
// process, and (netns mode) no bridge or veth. Namespaces, directories and
// processes carry this process's id; links do not, and other test packages
// make fleets at the same time, so the links are counted in a network
// namespace of this test's own, where a child process starts the fleet.
func TestStartFailureStopsWhatItStarted(t *testing.T) {
	modes := []fleet.Mode{fleet.ModeLoopback}
	if netnsTests() {
		modes = append(modes, fleet.ModeNetns)
	}
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			before := leftovers(t, os.Getpid())
			f, err := fleet.Start(context.Background(), fleet.Options{N: 2, Mode: mode, Varnishd: "false"}) // exits at once
			require.Error(t, err)
			require.Nil(t, f)
			assert.Contains(t, err.Error(), "exited")
			after := leftovers(t, os.Getpid())
			for kind, names := range after {
				for _, n := range names {
					assert.Contains(t, before[kind], n, "%s left behind: %s", kind, n)
				}
			}
		})
	}
	if !netnsTests() {
		return
	}
	t.Run("netns-links", func(t *testing.T) {
		ns := fmt.Sprintf("cdnpurge-linktest-%d", os.Getpid())
		require.NoError(t, exec.Command("ip", "netns", "add", ns).Run())
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run", "^TestStartFailureInChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "CDNPURGE_E2E_START_FAILURE_CHILD=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "--- PASS: TestStartFailureInChild")
		links, err := exec.Command("ip", "-n", ns, "-o", "link", "show").Output()
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(links)), "\n") {
			assert.Contains(t, line, ": lo:", "link left behind in the fleet's network namespace: %s", line)
		}
	})
}

// TestStartFailureInChild is TestStartFailureStopsWhatItStarted's child: a
// netns fleet that fails to start, in a network namespace of its own.
func TestStartFailureInChild(t *testing.T) {
	if os.Getenv("CDNPURGE_E2E_START_FAILURE_CHILD") == "" {
		t.Skip("run by TestStartFailureStopsWhatItStarted")
	}
	before := leftovers(t, os.Getpid())
	f, err := fleet.Start(context.Background(), fleet.Options{N: 2, Mode: fleet.ModeNetns, Varnishd: "false"})
	require.Error(t, err)
	require.Nil(t, f)
	assert.Contains(t, err.Error(), "exited")
	after := leftovers(t, os.Getpid())
	for kind, names := range after {
		for _, n := range names {
			assert.Contains(t, before[kind], n, "%s left behind: %s", kind, n)
		}
	}
}

// netnsTests says whether this process can make network namespaces (not
// as root in a container, which lacks the capabilities).
func netnsTests() bool {
	return fleet.NetnsAvailable(context.Background()) == nil
}

// leftovers lists what fleets of process pid hold: state directories,
// network namespaces, and processes naming a state directory.
func leftovers(t *testing.T, pid int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	prefix := fmt.Sprintf("cdnpurge-fleet-%d-", pid) // fleet's state directory naming
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	require.NoError(t, err)
	out["state directory"] = dirs
	if netnsTests() {
		b, err := exec.Command("ip", "netns", "list").Output()
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			if strings.HasPrefix(name, fmt.Sprintf("cdnpurge-%d-", pid)) {
				out["namespace"] = append(out["namespace"], name)
			}
		}
	}
	procs, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range procs {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(prefix)) {
			out["process"] = append(out["process"], e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// TestSoftPurge: with the VCL's Purge-Soft header, every instance serves the
// old copy once more (stale) while it fetches a fresh one.
func TestSoftPurge(t *testing.T) {
	f, tok := shared(t)
	us := []string{site(t) + "/soft/1"}
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectFresh, us), cachestatus.Hit)

	j := job(f, us...)
	j.Token, j.Soft = tok, true
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())

	stale := verify(t, f, purge.ExpectStale, us)
	assert.True(t, stale.OK(), stale.Summary())
	requireAll(t, stale, cachestatus.Stale)

	j = job(f, us...)
	j.VerifyOnly, j.Verify = true, []purge.Expect{purge.ExpectFresh}
	j.Wait, j.Interval = 10*time.Second, purge.MinInterval
	out = run(t, j)
	assert.True(t, out.OK(), out.Verify[0].Summary())
}
