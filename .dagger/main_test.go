package main

// These tests call the generated dispatch (invoke) with JSON arguments, as
// the Dagger engine does, with every +default pragma of main.go applied as
// the engine applies it, against a local loopback fleet of real varnishd.
// Untested here, for want of an engine: reading a *dagger.Secret or
// *dagger.File (Plaintext, Contents), and the container functions
// Varnish, E2e and Test.

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
)

// pragmaDefaults reads the +default pragmas of fn's parameters in main.go,
// as JSON values by argument name, as the engine registers them.
func pragmaDefaults(t *testing.T, fn string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "main.go", nil, parser.ParseComments)
	require.NoError(t, err)
	out := map[string]string{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name != fn || fd.Recv == nil {
			continue
		}
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
	t.Fatalf("no function %s in main.go", fn)
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
		"method":      strconv.Quote(purge.DefaultVerifyMethod),
		"interval":    strconv.Quote(purge.DefaultInterval.String()),
	}
	for fn, n := range map[string]int{"Purge": 11, "Ban": 5, "Verify": 8} {
		pragmas := pragmaDefaults(t, fn)
		require.Len(t, pragmas, n, "%s's +default pragmas: %v", fn, pragmas)
		for arg, v := range pragmas {
			want, ok := library[arg]
			require.True(t, ok, "%s --%s has a +default the test does not know: add it to this table", fn, arg)
			assert.Equal(t, want, v, "%s --%s: the +default pragma disagrees with the library's default", fn, arg)
		}
	}
}

// call invokes fn as the engine does: the pragma defaults, then args.
func call(t *testing.T, fn string, args map[string]any) (string, error) {
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
	out, err := invoke(context.Background(), []byte("{}"), "Cdnpurge", fn, in)
	if err != nil {
		return "", err
	}
	s, ok := out.(string)
	require.True(t, ok, "%s returned %T", fn, out)
	return s, nil
}

func fleetArgs(f *fleet.Fleet, extra map[string]any) map[string]any {
	args := map[string]any{"dnsName": f.Name, "record": string(f.Record), "port": f.Port, "resolver": f.Resolver}
	for k, v := range extra {
		args[k] = v
	}
	return args
}

func startFleet(t *testing.T) *fleet.Fleet {
	return fleettest.Start(t, fleet.Options{N: 3, Mode: fleet.ModeLoopback})
}

func TestPurgeAndVerifyThroughInvoke(t *testing.T) {
	f := startFleet(t)
	u := "https://changelog.com/dagger/1"
	_, err := call(t, "Verify", fleetArgs(f, map[string]any{"url": []string{u}, "expect": "any"}))
	require.NoError(t, err)
	out, err := call(t, "Verify", fleetArgs(f, map[string]any{"url": []string{u}, "expect": "hit"}))
	require.NoError(t, err)
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected hit")

	out, err = call(t, "Purge", fleetArgs(f, map[string]any{"url": []string{u}, "verify": []string{"miss", "hit"}}))
	require.NoError(t, err)
	assert.Contains(t, out, "purged 1 URL on 3/3 instances")
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected miss")
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected hit")
	for _, m := range f.Members {
		assert.Contains(t, out, m.Instance.String())
	}

	out, err = call(t, "Purge", fleetArgs(f, map[string]any{"url": []string{u}, "format": "json", "verify": []string{"purged"}}))
	require.NoError(t, err)
	var rep struct {
		OK    bool
		Purge struct{ Instances []string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.True(t, rep.OK)
	assert.Len(t, rep.Purge.Instances, 3)
}

// The module has what the CLI has: per-instance, pipeline, deadline, dry run.
func TestPurgeSettingsTheCLIHas(t *testing.T) {
	f := startFleet(t)
	out, err := call(t, "Purge", fleetArgs(f, map[string]any{"url": []string{"https://changelog.com/dry"}, "dryRun": true}))
	require.NoError(t, err)
	assert.Contains(t, out, "would send PURGE to 3 instances x 1 URLs over http; nothing was sent")
	out, err = call(t, "Purge", fleetArgs(f, map[string]any{"url": []string{"https://changelog.com/a", "https://changelog.com/b"},
		"perInstance": 1, "pipeline": 1, "deadline": "30s", "rawUrl": true}))
	require.NoError(t, err)
	assert.Contains(t, out, "purged 2 URLs on 3/3 instances")
}

func TestPurgeStaticInstancesThroughInvoke(t *testing.T) {
	f := startFleet(t)
	var list []string
	for _, m := range f.Members {
		list = append(list, m.Instance.String())
	}
	out, err := call(t, "Purge", map[string]any{"url": []string{"https://changelog.com/static"}, "instance": list, "format": "markdown"})
	require.NoError(t, err)
	assert.Contains(t, out, "| Url | Instance | Status |")
	assert.Contains(t, out, "purged 1 URL on 3/3 instances")
}

func TestFailuresSayWhichStepFailed(t *testing.T) {
	f := startFleet(t)
	require.NoError(t, f.Stop(1))
	_, err := call(t, "Purge", fleetArgs(f, map[string]any{"url": []string{"https://changelog.com/partial"}, "retries": 0}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FAILED: purge: 1 of 3 results failed on 1 of 3 instances")
	assert.Contains(t, err.Error(), "purged 1 URL on 2/3 instances")
	assert.Contains(t, err.Error(), "connection refused")

	_, err = call(t, "Verify", fleetArgs(f, map[string]any{"url": []string{"https://changelog.com/partial"}, "expect": "any", "retries": 0}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FAILED: verify any")

	// Every purge succeeds; only the strict check fails: the error says so.
	g := startFleet(t)
	u := []string{"https://changelog.com/verify-only"}
	_, err = call(t, "Purge", fleetArgs(g, map[string]any{"url": u, "verify": []string{"hit"}}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FAILED: verify hit: 3 of 3 checks did not match")
	assert.NotContains(t, err.Error(), "purge:")
	assert.Contains(t, err.Error(), "purged 1 URL on 3/3 instances")
}

func TestBanThroughInvoke(t *testing.T) {
	f := startFleet(t)
	out, err := call(t, "Ban", fleetArgs(f, map[string]any{"url": []string{"https://changelog.com/"}, "regex": "^/assets/",
		"verifyUrl": []string{"https://changelog.com/assets/app.css"}}))
	require.NoError(t, err)
	assert.Contains(t, out, "sent BAN for 1 URL on 3/3 instances")
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected purged")
}

// Proof by content: the origin's current version, compared with every
// copy (the fleet's origin serves the same body for each request, so the
// instances are current after a purge).
func TestVerifyWithTheOriginThroughInvoke(t *testing.T) {
	f := startFleet(t)
	u := "https://changelog.com/origin-compare"
	out, err := call(t, "Purge", fleetArgs(f, map[string]any{"url": []string{u}, "verify": []string{"purged"},
		"origin": "http://" + f.Origin.Addr, "format": "json"}))
	require.NoError(t, err, out)
	assert.Contains(t, out, `"current": true`)
	out, err = call(t, "Verify", fleetArgs(f, map[string]any{"url": []string{u}, "expect": "current", "origin": "http://" + f.Origin.Addr}))
	require.NoError(t, err, out)
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected current")
}

// Arguments that cannot work are errors that name the argument.
func TestBadArguments(t *testing.T) {
	for _, tc := range []struct {
		fn   string
		args map[string]any
		want string
	}{
		{"Purge", map[string]any{"dnsName": "cdn.internal"}, "no URL given"},
		{"Purge", map[string]any{"url": []string{"/podcast/1"}, "dnsName": "cdn.internal"}, "not absolute"},
		{"Purge", map[string]any{"url": []string{"https://e.com/"}, "dnsName": "cdn.internal", "record": "mx"}, "use aaaa, a or srv"},
		{"Purge", map[string]any{"url": []string{"https://e.com/"}}, "no instances"},
		{"Purge", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "verify": []string{"warm"}}, `expect "warm"`},
		{"Purge", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "timeout": "soon"}, `--timeout "soon"`},
		{"Purge", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "insecure": true}, "only applies to https"},
		{"Purge", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "scheme": "HTTPS", "pipeline": -1}, "must not be negative"},
		{"Purge", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "method": "BAN", "verify": []string{"purged"}}, "give the URLs to verify"},
		{"Ban", map[string]any{"url": []string{"https://e.com/"}, "regex": "^/a b", "instance": []string{"10.0.0.1"}}, "white space"},
		{"Verify", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "expect": "warm"}, `expect "warm"`},
		{"Verify", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "format": "xml"}, "use text, json or markdown"},
		{"Verify", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "wait": "1m", "interval": "10ms"}, "at least 100ms"},
		{"Ban", map[string]any{"url": []string{"https://e.com/"}, "regex": "\\.css$", "instance": []string{"10.0.0.1"}}, "no literal path prefix"},
		{"Verify", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "expect": "current"}, "needs the origin"},
		{"Verify", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "origin": "ftp://x"}, "give the origin's base URL"},
		{"Verify", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "cacheHeader": "a b"}, "not a valid header name"},
		{"Purge", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "origin": "http://x", "verify": []string{}}, "no verify step"},
	} {
		_, err := call(t, tc.fn, tc.args)
		require.Error(t, err, "%s %v", tc.fn, tc.args)
		assert.Contains(t, err.Error(), tc.want, "%s %v", tc.fn, tc.args)
	}
}

// The Dagger CLI splits list values on commas: the error says so.
func TestSplitListArgumentsAreExplained(t *testing.T) {
	for _, args := range []map[string]any{
		{"url": []string{"https://cdn.example/w_100", "h_50/a.jpg"}, "instance": []string{"10.0.0.1"}},
		{"url": []string{"https://cdn.example/"}, "header": []string{"Accept-Encoding: gzip", " br"}, "instance": []string{"10.0.0.1"}},
	} {
		_, err := call(t, "Purge", args)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "the Dagger CLI splits list arguments on commas")
		assert.Contains(t, err.Error(), "--urls-file")
	}
}

// A value of the wrong type never reaches a function: the generated
// dispatch panics, as it does on the engine, and the panic names the
// argument.
func TestDispatchRefusesWrongTypes(t *testing.T) {
	for arg, v := range map[string]string{"port": `"eighty"`, "url": `"https://e.com/"`, "verify": `true`} {
		msg := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			_, _ = invoke(context.Background(), []byte("{}"), "Cdnpurge", "Purge", map[string][]byte{arg: []byte(v)})
			return "no panic"
		}()
		assert.Contains(t, msg, "failed to unmarshal input arg "+arg, arg)
	}
}
