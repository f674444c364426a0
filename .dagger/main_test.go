package main

// These tests call the generated dispatch (invoke) with JSON arguments, as
// the Dagger engine does, for the functions that do plain Go work. They run
// without an engine against a local loopback fleet of real varnishd.
// Untested here, for want of an engine: reading a token *dagger.Secret
// (Plaintext), and the container functions Varnish, E2e and Test.

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/e2e"
	"github.com/cdnpurge/cdnpurge/varnish"
)

func fleet(t *testing.T) *e2e.Fleet {
	t.Helper()
	if _, err := varnish.Lookup(""); err != nil {
		if os.Getenv("CDNPURGE_E2E") == "require" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	f, err := e2e.Start(context.Background(), e2e.Options{N: 3, Mode: e2e.ModeLoopback})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, f.Close()) })
	return f
}

// call invokes fn with the engine's defaults for every optional argument,
// overridden by args.
func call(t *testing.T, fn string, args map[string]any) (string, error) {
	t.Helper()
	defaults := map[string]any{
		"record": "aaaa", "port": 80, "tokenHeader": "Purge-Token", "method": "PURGE", "scheme": "http",
		"concurrency": 1024, "timeout": "5s", "retries": 2, "format": "text", "insecure": false,
		"verify": "", "resolver": "", "dnsName": "", "instance": []string{}, "header": []string{},
	}
	if fn == "Verify" {
		defaults["method"], defaults["expect"], defaults["wait"], defaults["interval"] = "HEAD", "hit", "", "5s"
		delete(defaults, "tokenHeader")
		delete(defaults, "verify")
	}
	in := map[string][]byte{}
	for k, v := range defaults {
		in[k], _ = json.Marshal(v)
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

func fleetArgs(f *e2e.Fleet, extra map[string]any) map[string]any {
	args := map[string]any{"dnsName": f.Name, "record": string(f.Record), "port": f.Port, "resolver": f.DNS.Addr}
	for k, v := range extra {
		args[k] = v
	}
	return args
}

func TestPurgeAndVerifyThroughInvoke(t *testing.T) {
	f := fleet(t)
	u := "https://changelog.com/dagger/1"
	_, err := call(t, "Verify", fleetArgs(f, map[string]any{"url": []string{u}, "expect": "any"}))
	require.NoError(t, err)
	out, err := call(t, "Verify", fleetArgs(f, map[string]any{"url": []string{u}, "expect": "hit"}))
	require.NoError(t, err)
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected hit")

	out, err = call(t, "Purge", fleetArgs(f, map[string]any{"url": []string{u}, "verify": "miss,hit"}))
	require.NoError(t, err)
	assert.Contains(t, out, "purged 1 URL on 3/3 instances")
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected miss")
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected hit")
	for _, m := range f.Members {
		assert.Contains(t, out, m.Instance.String())
	}

	out, err = call(t, "Purge", fleetArgs(f, map[string]any{"url": []string{u}, "format": "json"}))
	require.NoError(t, err)
	var rep struct {
		OK        bool
		Instances []string
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.True(t, rep.OK)
	assert.Len(t, rep.Instances, 3)
}

func TestPurgeStaticInstancesThroughInvoke(t *testing.T) {
	f := fleet(t)
	var list []string
	for _, m := range f.Members {
		list = append(list, m.Instance.String())
	}
	out, err := call(t, "Purge", map[string]any{"url": []string{"https://changelog.com/static"}, "instance": list, "format": "markdown"})
	require.NoError(t, err)
	assert.Contains(t, out, "| URL | Instance | Status |")
	assert.Contains(t, out, "purged 1 URL on 3/3 instances")
}

func TestPartialFailureReturnsError(t *testing.T) {
	f := fleet(t)
	require.NoError(t, f.Stop(1))
	_, err := call(t, "Purge", fleetArgs(f, map[string]any{"url": []string{"https://changelog.com/partial"}, "retries": 0}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not every instance was purged")
	assert.Contains(t, err.Error(), "purged 1 URL on 2/3 instances")
	assert.Contains(t, err.Error(), f.Members[1].Instance.String()+": connection refused")

	_, err = call(t, "Verify", fleetArgs(f, map[string]any{"url": []string{"https://changelog.com/partial"}, "expect": "any", "retries": 0}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not every instance matched")
}

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
		{"Purge", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "verify": "warm"}, "--verify"},
		{"Purge", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "timeout": "soon"}, "--timeout"},
		{"Verify", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "expect": "warm"}, "--expect"},
		{"Verify", map[string]any{"url": []string{"https://e.com/"}, "instance": []string{"10.0.0.1"}, "format": "xml"}, "use text, json or markdown"},
	} {
		_, err := call(t, tc.fn, tc.args)
		require.Error(t, err, "%s %v", tc.fn, tc.args)
		assert.Contains(t, err.Error(), tc.want, "%s %v", tc.fn, tc.args)
		assert.False(t, strings.Contains(err.Error(), "panic"))
	}
}
