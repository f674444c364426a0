package cli

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/internal/syncbuf"
)

func TestDemo(t *testing.T) {
	fleettest.NeedVarnishd(t)
	r := run(t, nil, "", "demo", "--instances", "2")
	require.Equal(t, ExitOK, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "-> 1 of 2 instances still serve the stale copy.")
	assert.Contains(t, r.stdout, "purged 1 URL on 2/2 instances")
	assert.Contains(t, r.stdout, "verified 1 URL on 2/2 instances: expected miss")
	assert.Contains(t, r.stdout, "verified 1 URL on 2/2 instances: expected hit")
	assert.Contains(t, r.stdout, "Done: the purge reached all 2 instances")
	assert.Contains(t, r.stdout, "cdn-1; fwd=miss; stored")
}

func TestDemoKeepStaysUpUntilCancelled(t *testing.T) {
	fleettest.NeedVarnishd(t)
	var out, errb syncbuf.Buffer
	a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Version: "test", Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int)
	go func() { done <- a.Run(ctx, []string{"demo", "--instances", "1", "--mode", "loopback", "--keep"}) }()
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
	assert.Contains(t, out.String(), "curl -sI -H 'Host: cdnpurge.example'")
	assert.Contains(t, out.String(), "cdnpurge verify --url https://cdnpurge.example/episodes/1 --dns-name fleet.cdnpurge.test")
	cancel()
	assert.Equal(t, ExitOK, <-done)
	assert.Contains(t, out.String(), "Stopping the fleet.")
}

func TestDemoWithoutVarnishd(t *testing.T) {
	r := run(t, nil, "", "demo", "--varnishd", "/nonexistent/varnishd")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "varnishd is not installed")
	assert.Contains(t, r.stderr, "apt-get install -y varnish")
	assert.Empty(t, r.stdout)
}

func TestDemoUsage(t *testing.T) {
	r := run(t, nil, "", "demo", "--instances", "0")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--instances 0: give 1 to 50")
	r = run(t, nil, "", "demo", "--mode", "external")
	assert.Equal(t, ExitUsage, r.code)
	r = run(t, nil, "", "demo", "--help")
	assert.Equal(t, ExitOK, r.code)
	assert.Contains(t, r.stdout, "--keep")
}

// As root without the capabilities a container's root lacks (capsh drops
// what a Dagger exec lacks), the demo runs on loopback addresses and says
// why, instead of failing on the first 'ip link add'.
func TestDemoAsRootWithoutNetnsCapabilities(t *testing.T) {
	fleettest.NeedVarnishd(t)
	capsh, err := exec.LookPath("capsh")
	if err != nil || os.Geteuid() != 0 {
		if fleettest.Required() && os.Geteuid() == 0 {
			t.Fatal("CDNPURGE_E2E=require: capsh is not installed (apt-get install -y libcap2-bin)")
		}
		t.Skip("needs root and capsh (libcap2-bin)")
	}
	cmd := exec.Command(capsh, "--drop=cap_net_admin,cap_sys_admin", "--", "-c", `exec "$0" demo --instances 2`, binary(t))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	s := string(out)
	assert.Contains(t, s, "Fleet up: instances on loopback addresses")
	assert.Contains(t, s, "(Not one network namespace each: cannot create network interfaces here (root in a container, or another sandbox, without CAP_NET_ADMIN)")
	assert.NotContains(t, s, "run as root")
	assert.Contains(t, s, "Done: the purge reached all 2 instances")
}
