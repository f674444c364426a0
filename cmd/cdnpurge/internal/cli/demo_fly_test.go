package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/internal/syncbuf"
)

func TestDemoFly(t *testing.T) {
	fleettest.NeedVarnishd(t)
	var out, errb bytes.Buffer
	a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Version: "test", Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := a.Run(ctx, []string{"demo", "--fly", "--instances", "2"})
	s := out.String()
	require.Equal(t, ExitOK, code, s+errb.String())
	assert.Empty(t, errb.String())
	assert.Contains(t, s, "A local stand-in for Fly.io (nothing here reaches Fly.io)")
	assert.Contains(t, s, "lists app cdnpurge-demo's machines")
	assert.Regexp(t, `(?m)^  iad/[0-9a-f]{14}  cdn-1  started -> `, s)
	assert.Regexp(t, `(?m)^  sjc/[0-9a-f]{14}  cdn-2  started -> `, s)
	assert.Contains(t, s, "1. Warm the caches: ask each of the 2 instances (listed by the Machines API)")
	assert.Contains(t, s, "-> 1 of 2 instances still serve the stale copy.")
	assert.Contains(t, s, "3. cdnpurge: PURGE every instance listed by the Machines API, at once")
	assert.Contains(t, s, "purged 1 URL on 2/2 instances")
	assert.Contains(t, s, "verified 1 URL on 2/2 instances: expected miss")
	assert.Contains(t, s, "verified 1 URL on 2/2 instances: expected hit")
	assert.Contains(t, s, "Done: the purge reached all 2 instances")
	// Results are labelled with the machines, and each answer comes from
	// the member behind its machine.
	assert.Regexp(t, `iad/[0-9a-f]{14}\s+200\s+miss .* cdn-1; fwd=miss; stored`, s)
	assert.Regexp(t, `sjc/[0-9a-f]{14}\s+200\s+hit .* cdn-2; hit`, s)
}

// The commands --keep prints in edge mode work as printed.
func TestDemoFlyKeepPrintsCommandsThatWork(t *testing.T) {
	fleettest.NeedVarnishd(t)
	var out, errb syncbuf.Buffer
	a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Version: "test", Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int)
	go func() {
		done <- a.Run(ctx, []string{"demo", "--fly", "--instances", "1", "--mode", "loopback", "--keep"})
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "stays up until Ctrl-C") {
		select {
		case code := <-done:
			t.Fatalf("demo ended (%d) before staying up: %s %s", code, out.String(), errb.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "demo did not come up: %s", out.String())
		time.Sleep(10 * time.Millisecond)
	}
	s := out.String()
	assert.Regexp(t, `curl -s -H 'Authorization: Bearer demo-fly-[0-9a-f]+' http://127\.0\.0\.1:\d+/v1/apps/cdnpurge-demo/machines`, s)
	assert.Regexp(t, `curl -sI -H 'Host: cdnpurge.example' -H 'fly-force-instance-id: [0-9a-f]{14}' http://127\.0\.0\.1:\d+/episodes/1`, s)

	// Run the printed verify and purge commands, their environment as printed.
	var ran int
	for _, line := range strings.Split(s, "\n") {
		fields := strings.Fields(line)
		env := map[string]string{}
		for len(fields) > 0 && strings.Contains(fields[0], "=") && !strings.HasPrefix(fields[0], "-") {
			k, v, _ := strings.Cut(fields[0], "=")
			env[k] = v
			fields = fields[1:]
		}
		if len(fields) < 2 || fields[0] != "cdnpurge" || env["FLY_API_TOKEN"] == "" {
			continue
		}
		var o, e bytes.Buffer
		b := &App{Stdin: strings.NewReader(""), Stdout: &o, Stderr: &e, Version: "test", Getenv: func(k string) string { return env[k] }}
		code := b.Run(context.Background(), fields[1:])
		assert.Equal(t, ExitOK, code, "%s\n%s%s", line, o.String(), e.String())
		assert.Regexp(t, `iad/[0-9a-f]{14}`, o.String())
		ran++
	}
	assert.Equal(t, 2, ran, "the verify and purge commands: %s", s)

	cancel()
	assert.Equal(t, ExitOK, <-done)
	assert.Contains(t, out.String(), "Stopping the fleet.")
}
