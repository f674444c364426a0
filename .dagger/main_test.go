package main

// These tests call the generated dispatch (invoke) with JSON arguments, as
// the Dagger engine does: the constructor first (New, with its +default
// pragmas applied as the engine applies them), its result marshalled to
// JSON as the engine stores it, then the function with that parent and its
// own arguments, against a local loopback fleet of real varnishd.
// Untested here, for want of an engine: reading a *dagger.Secret or
// *dagger.File (Plaintext, Contents), and the container functions
// Varnish, E2e and Test (.ci/run imitates their containers).

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

// pragmaDefaults reads the +default pragmas of fn's parameters (fn is New
// or a method of Cdnpurge) in the module's source, as JSON values by
// argument name, as the engine registers them.
func pragmaDefaults(t *testing.T, fn string) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "dagger.gen.go" {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Name.Name != fn || (fd.Recv == nil) != (fn == "New") {
				continue
			}
			out := map[string]string{}
			// A parameter's comments are not its Doc: the comment map ties
			// them to it, as Dagger's codegen reads them.
			comments := ast.NewCommentMap(fset, fd, f.Comments)
			for _, p := range fd.Type.Params.List {
				for _, g := range comments[p] {
					for _, line := range strings.Split(g.Text(), "\n") {
						if v, ok := strings.CutPrefix(strings.TrimSpace(line), "+default="); ok {
							for _, n := range p.Names {
								out[n.Name] = v
							}
						}
					}
				}
			}
			return out
		}
	}
	t.Fatalf("no function %s in the module", fn)
	return nil
}

// The module's defaults are the library's: a pragma that disagrees fails.
func TestDefaultsAreTheLibrarys(t *testing.T) {
	library := map[string]string{
		"record":      strconv.Quote(string(purge.DefaultRecord)),
		"dnsTimeout":  strconv.Quote(purge.DefaultDNSTimeout.String()),
		"port":        strconv.Itoa(purge.DefaultPort),
		"flyApi":      strconv.Quote(purge.DefaultFlyAPI),
		"tokenHeader": strconv.Quote(purge.DefaultTokenHeader),
		"concurrency": strconv.Itoa(purge.DefaultConcurrency),
		"perInstance": strconv.Itoa(purge.DefaultPerInstance),
		"pipeline":    strconv.Itoa(purge.DefaultPipeline),
		"timeout":     strconv.Quote(purge.DefaultTimeout.String()),
		"retries":     strconv.Itoa(purge.DefaultAttempts - 1),
		"format":      strconv.Quote(string(report.DefaultFormat)),
		"expect":      strconv.Quote(string(purge.DefaultExpect)),
		"interval":    strconv.Quote(purge.DefaultInterval.String()),
	}
	for fn, n := range map[string]int{"New": 10, "Purge": 1, "Ban": 1, "Verify": 3} {
		pragmas := pragmaDefaults(t, fn)
		require.Len(t, pragmas, n, "%s's +default pragmas: %v", fn, pragmas)
		for arg, v := range pragmas {
			want, ok := library[arg]
			require.True(t, ok, "%s --%s has a +default the test does not know: add it to this table", fn, arg)
			assert.Equal(t, want, v, "%s --%s: the +default pragma disagrees with the library's default", fn, arg)
		}
	}
}

// withDefaults is args after fn's pragma defaults, as JSON.
func withDefaults(t *testing.T, fn string, args map[string]any) map[string][]byte {
	t.Helper()
	in := map[string][]byte{}
	for k, v := range pragmaDefaults(t, fn) {
		in[k] = []byte(v)
	}
	for k, v := range args {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		in[k] = b
	}
	return in
}

// call invokes the constructor with fleet, then fn with args, as the
// engine does (the constructor's result goes to fn as JSON).
func call(t *testing.T, fleet map[string]any, fn string, args map[string]any) (string, error) {
	t.Helper()
	obj, err := invoke(context.Background(), []byte("{}"), "Cdnpurge", "", withDefaults(t, "New", fleet))
	require.NoError(t, err)
	parent, err := json.Marshal(obj)
	require.NoError(t, err)
	out, err := invoke(context.Background(), parent, "Cdnpurge", fn, withDefaults(t, fn, args))
	if err != nil {
		return "", err
	}
	s, ok := out.(string)
	require.True(t, ok, "%s returned %T", fn, out)
	return s, nil
}

func fleetArgs(f *fleet.Fleet) map[string]any {
	return map[string]any{"dnsName": f.Name, "record": string(f.Record), "port": f.Port, "resolver": f.Resolver}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func startFleet(t *testing.T) *fleet.Fleet {
	return fleettest.Start(t, fleet.Options{N: 3, Mode: fleet.ModeLoopback})
}

func TestPurgeAndVerifyThroughInvoke(t *testing.T) {
	f := startFleet(t)
	fl := fleetArgs(f)
	u := "https://changelog.com/dagger/1"
	_, err := call(t, fl, "Verify", map[string]any{"url": []string{u}, "expect": "any"})
	require.NoError(t, err)
	out, err := call(t, fl, "Verify", map[string]any{"url": []string{u}, "expect": "hit"})
	require.NoError(t, err)
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected hit")

	out, err = call(t, fl, "Purge", map[string]any{"url": []string{u}, "verify": []string{"miss", "hit"}})
	require.NoError(t, err)
	assert.Contains(t, out, "purged 1 URL on 3/3 instances")
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected miss")
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected hit")
	for _, m := range f.Members {
		assert.Contains(t, out, m.Instance.String())
	}

	out, err = call(t, fl, "Purge", map[string]any{"url": []string{u}, "format": "json", "verify": []string{"purged"}})
	require.NoError(t, err)
	rep := reporttest.Require(t, out)
	assert.True(t, rep.OK)
	assert.Len(t, rep.Instances, 3)
	require.Len(t, rep.Steps, 2)
	assert.Len(t, rep.Purge().Results, 3)
}

// The constructor's settings reach every function: per-instance, pipeline,
// deadline and raw URLs for purge, a dry run.
func TestConstructorSettingsReachTheFunctions(t *testing.T) {
	f := startFleet(t)
	out, err := call(t, fleetArgs(f), "Purge", map[string]any{"url": []string{"https://changelog.com/dry"}, "dryRun": true})
	require.NoError(t, err)
	assert.Contains(t, out, "would send PURGE to 3 instances x 1 URL over http; nothing was sent")
	out, err = call(t, with(fleetArgs(f), "perInstance", 1, "pipeline", 1, "deadline", "30s", "rawUrl", true, "header", []string{"X-Debug: 1"}),
		"Purge", map[string]any{"url": []string{"https://changelog.com/a", "https://changelog.com/b"}})
	require.NoError(t, err)
	assert.Contains(t, out, "purged 2 URLs on 3/3 instances")

	// A setting that cannot work fails every function the same way.
	for _, fn := range []string{"Purge", "Ban", "Verify"} {
		_, err := call(t, with(fleetArgs(f), "timeout", "soon"), fn, map[string]any{"url": []string{"https://changelog.com/"}, "regex": "^/"})
		require.Error(t, err, fn)
		assert.True(t, strings.HasPrefix(err.Error(), `nothing was sent: --timeout "soon"`), "%s: %v", fn, err)
	}
}

func TestPurgeStaticInstancesThroughInvoke(t *testing.T) {
	f := startFleet(t)
	var list []string
	for _, m := range f.Members {
		list = append(list, m.Instance.String())
	}
	out, err := call(t, map[string]any{"instance": list}, "Purge", map[string]any{"url": []string{"https://changelog.com/static"}, "format": "markdown"})
	require.NoError(t, err)
	assert.Contains(t, out, "| Url | Instance | Status |")
	assert.Contains(t, out, "purged 1 URL on 3/3 instances")
}

// An error starts with whether anything was sent (Dagger exits 1 for
// both), then says which step failed, and holds the report.
func TestFailuresSayWhetherAnythingWasSent(t *testing.T) {
	f := startFleet(t)
	require.NoError(t, f.Stop(1))
	fl := with(fleetArgs(f), "retries", 0)
	_, err := call(t, fl, "Purge", map[string]any{"url": []string{"https://changelog.com/partial"}})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "sent, and FAILED: purge: 1 of 3 results failed on 1 of 3 instances"), err.Error())
	assert.Contains(t, err.Error(), "purged 2 of 3 (1 URL x 3 instances)")
	assert.Contains(t, err.Error(), "connection refused")

	_, err = call(t, fl, "Verify", map[string]any{"url": []string{"https://changelog.com/partial"}, "expect": "any"})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "sent, and FAILED: verify any"), err.Error())

	// Every purge succeeds; only the strict check fails: the error says so.
	g := startFleet(t)
	u := []string{"https://changelog.com/verify-only"}
	_, err = call(t, fleetArgs(g), "Purge", map[string]any{"url": u, "verify": []string{"hit"}})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "sent, and FAILED: verify hit: 3 of 3 checks did not match"), err.Error())
	assert.NotContains(t, err.Error(), "purge:")
	assert.Contains(t, err.Error(), "purged 1 URL on 3/3 instances")

	// Discovery that finds nothing: nothing was sent, and the remedy is
	// worded once, in this module's arguments.
	_, err = call(t, with(fleetArgs(g), "record", "srv"), "Purge", map[string]any{"url": u})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "nothing was sent: discover SRV "), err.Error())
	assert.True(t, strings.HasSuffix(err.Error(), "\nhint: pass --record a"), err.Error())
	assert.Equal(t, 1, strings.Count(err.Error(), "record a"), err.Error())
}

func TestBanThroughInvoke(t *testing.T) {
	f := startFleet(t)
	out, err := call(t, fleetArgs(f), "Ban", map[string]any{"url": []string{"https://changelog.com/"}, "regex": "^/assets/",
		"verify": []string{"purged"}, "verifyUrl": []string{"https://changelog.com/assets/app.css"}})
	require.NoError(t, err)
	assert.Contains(t, out, "sent BAN for 1 URL on 3/3 instances")
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected purged")

	out, err = call(t, fleetArgs(f), "Ban", map[string]any{"url": []string{"https://changelog.com/"}, "regex": "^/assets/", "dryRun": true})
	require.NoError(t, err)
	assert.Contains(t, out, "would send BAN to 3 instances")
}

// A function's network has no IPv6: a fleet found on IPv6 addresses fails
// before anything is sent, naming the way out, instead of timing out on
// each instance.
func TestIPv6InstancesFailBeforeSending(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	for _, fn := range []string{"Purge", "Verify"} {
		_, err = call(t, map[string]any{"instance": []string{l.Addr().String()}}, fn, map[string]any{"url": []string{"https://changelog.com/"}})
		require.Error(t, err)
		msg := err.Error()
		assert.True(t, strings.HasPrefix(msg, "nothing was sent: discover "+l.Addr().String()+": 1 of 1 instances have IPv6 addresses"), msg)
		assert.Contains(t, msg, "\nhint: a Dagger function's network has no IPv6")
		assert.Contains(t, msg, "--fly-app")
		assert.Contains(t, msg, "cdnpurge serve")
	}
	assert.Zero(t, accepted.Load(), "nothing was sent")
}

// Proof by content: the origin's current version, compared with every
// copy; a ban's request path is its regex's literal prefix, and one
// without a prefix is sent only when declared broad.
func TestProofThroughInvoke(t *testing.T) {
	f := startFleet(t)
	u := "https://changelog.com/origin-compare"
	origin := "http://" + f.Origin.Addr
	out, err := call(t, fleetArgs(f), "Purge", map[string]any{"url": []string{u}, "verify": []string{"purged"}, "origin": origin, "format": "json"})
	require.NoError(t, err, out)
	rep := reporttest.Require(t, out)
	assert.Equal(t, origin, rep.Verify()[0].Origin)
	for _, c := range rep.Verify()[0].Results {
		require.NotNil(t, c.Current, c.Instance)
		assert.True(t, *c.Current, c.Instance)
	}
	out, err = call(t, with(fleetArgs(f), "cacheHeader", "X-App-Cache"), "Verify", map[string]any{"url": []string{u}, "expect": "current", "origin": origin})
	require.NoError(t, err, out)
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected current")
	assert.Contains(t, out, "compared with the origin: "+origin)

	out, err = call(t, fleetArgs(f), "Ban", map[string]any{"url": []string{"https://changelog.com/"}, "regex": "^/p/42/", "dryRun": true})
	require.NoError(t, err)
	assert.Contains(t, out, "BAN /p/42/")
	out, err = call(t, fleetArgs(f), "Ban", map[string]any{"url": []string{"https://changelog.com/"}, "regex": `\.css$`, "broad": true, "method": "ban", "dryRun": true})
	require.NoError(t, err)
	assert.Contains(t, out, "BAN /  Host: changelog.com")
}

// Arguments that cannot work are errors that name the argument.
func TestBadArguments(t *testing.T) {
	static := map[string]any{"instance": []string{"10.0.0.1"}}
	for _, tc := range []struct {
		fleet map[string]any
		fn    string
		args  map[string]any
		want  string
	}{
		{map[string]any{"dnsName": "cdn.internal"}, "Purge", nil, "no URL given"},
		{map[string]any{"dnsName": "cdn.internal"}, "Purge", map[string]any{"url": []string{"/podcast/1"}}, "not absolute"},
		{map[string]any{"dnsName": "cdn.internal", "record": "mx"}, "Purge", map[string]any{"url": []string{"https://e.com/"}}, "use aaaa, a or srv"},
		{nil, "Purge", map[string]any{"url": []string{"https://e.com/"}}, "no instances"},
		{static, "Purge", map[string]any{"url": []string{"https://e.com/"}, "verify": []string{"warm"}}, `expect "warm"`},
		{with(static, "timeout", "soon"), "Purge", map[string]any{"url": []string{"https://e.com/"}}, `--timeout "soon"`},
		{with(static, "retries", -1), "Purge", map[string]any{"url": []string{"https://e.com/"}}, "--retries -1: give 0 or more"},
		{with(static, "insecure", true), "Purge", map[string]any{"url": []string{"https://e.com/"}}, "only applies to https"},
		{with(static, "scheme", "HTTPS", "pipeline", -1), "Purge", map[string]any{"url": []string{"https://e.com/"}}, "must not be negative"},
		{static, "Purge", map[string]any{"url": []string{"https://e.com/"}, "method": "BAN", "verify": []string{"purged"}}, "give the URLs to verify"},
		{static, "Ban", map[string]any{"url": []string{"https://e.com/"}, "regex": "^/a b"}, "white space"},
		{static, "Ban", map[string]any{"url": []string{"https://e.com/"}, "regex": "^/a", "verify": []string{"purged"}}, "give the URLs to verify"},
		{static, "Verify", map[string]any{"url": []string{"https://e.com/"}, "expect": "warm"}, `expect "warm"`},
		{static, "Verify", map[string]any{"url": []string{"https://e.com/"}, "format": "xml"}, "use text, json or markdown"},
		{static, "Verify", map[string]any{"url": []string{"https://e.com/"}, "wait": "1m", "interval": "10ms"}, "at least 100ms"},
		{static, "Ban", map[string]any{"url": []string{"https://e.com/"}, "regex": `\.css$`}, "no literal path prefix"},
		{static, "Verify", map[string]any{"url": []string{"https://e.com/"}, "expect": "current"}, "needs the origin"},
		{static, "Verify", map[string]any{"url": []string{"https://e.com/"}, "origin": "ftp://x"}, "give the origin's base URL"},
		{with(static, "cacheHeader", "a b"), "Verify", map[string]any{"url": []string{"https://e.com/"}}, "not a valid header name"},
		{static, "Purge", map[string]any{"url": []string{"https://e.com/"}, "origin": "http://x"}, "no verify step"},
	} {
		_, err := call(t, tc.fleet, tc.fn, tc.args)
		require.Error(t, err, "%s %v %v", tc.fn, tc.fleet, tc.args)
		assert.True(t, strings.HasPrefix(err.Error(), "nothing was sent: "), err.Error())
		assert.Contains(t, err.Error(), tc.want, "%s %v %v", tc.fn, tc.fleet, tc.args)
	}
}

// The Dagger CLI splits list values on commas: the error says so.
func TestSplitListArgumentsAreExplained(t *testing.T) {
	for _, tc := range []struct{ fleet, args map[string]any }{
		{map[string]any{"instance": []string{"10.0.0.1"}}, map[string]any{"url": []string{"https://cdn.example/w_100", "h_50/a.jpg"}}},
		{map[string]any{"instance": []string{"10.0.0.1"}, "header": []string{"Accept-Encoding: gzip", " br"}}, map[string]any{"url": []string{"https://cdn.example/"}}},
	} {
		_, err := call(t, tc.fleet, "Purge", tc.args)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "\nhint: the Dagger CLI splits list arguments on commas")
		assert.Contains(t, err.Error(), "--urls-file")
	}
}

// A value of the wrong type never reaches a function: the generated
// dispatch panics, as it does on the engine, and the panic names the
// argument.
func TestDispatchRefusesWrongTypes(t *testing.T) {
	for _, tc := range []struct{ fn, arg, v string }{{"", "port", `"eighty"`}, {"Purge", "url", `"https://e.com/"`}, {"Purge", "verify", `true`}} {
		msg := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			_, _ = invoke(context.Background(), []byte("{}"), "Cdnpurge", tc.fn, map[string][]byte{tc.arg: []byte(tc.v)})
			return "no panic"
		}()
		assert.Contains(t, msg, "failed to unmarshal input arg "+tc.arg, tc.arg)
	}
}
