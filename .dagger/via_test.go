package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/serve"
)

// The constructor's --via sends every job to a cdnpurge serve (here in-process, on loopback,
// open to loopback without a token), which purges every instance; a
// failure is an error holding the report, as without --via. Reading
// --api-token (a Secret) needs an engine and is untested here.
func TestViaThroughInvoke(t *testing.T) {
	f := startFleet(t)
	srv, err := serve.New(serve.Config{Job: purge.Job{DNSName: f.Name, Record: f.Record, Port: f.Port, Resolver: f.Resolver, Attempts: 1},
		Journal: filepath.Join(t.TempDir(), "journal.db"), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	via := "http://" + ln.Addr().String()
	u := []string{"https://changelog.com/via/1"}

	at := map[string]any{"via": via}
	_, err = call(t, at, "Verify", map[string]any{"url": u, "expect": "any"})
	require.NoError(t, err)
	out, err := call(t, at, "Purge", map[string]any{"url": u, "verify": []string{"miss"}})
	require.NoError(t, err)
	assert.Contains(t, out, "purged 1 URL on 3/3 instances")
	assert.Contains(t, out, "verified 1 URL on 3/3 instances: expected miss")
	out, err = call(t, at, "Ban", map[string]any{"url": []string{"https://changelog.com/"}, "regex": "^/via/"})
	require.NoError(t, err)
	assert.Contains(t, out, "sent BAN for 1 URL on 3/3 instances")

	_, err = call(t, with(fleetArgs(f), "via", via), "Purge", map[string]any{"url": u})
	require.ErrorContains(t, err, "the serve finds the instances")
	_, err = call(t, at, "Purge", map[string]any{"url": u, "dryRun": true})
	require.ErrorContains(t, err, "nothing was sent")

	require.NoError(t, f.Stop(1))
	_, err = call(t, at, "Purge", map[string]any{"url": u})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FAILED: purge: 1 of 3 results failed on 1 of 3 instances")
	assert.Contains(t, err.Error(), "purged 2 of 3 (1 URL x 3 instances)")
}
