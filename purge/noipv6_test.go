package purge

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runNoIPv6 runs j with NoIPv6, and plans it, and returns the run's
// *DiscoveryError; both must fail the same way.
func runNoIPv6(t *testing.T, j Job) *DiscoveryError {
	t.Helper()
	j.NoIPv6 = true
	_, perr := j.Plan(context.Background())
	_, err := j.Run(context.Background())
	require.Error(t, err)
	require.Error(t, perr)
	assert.Equal(t, err.Error(), perr.Error(), "a dry run says the same")
	var de *DiscoveryError
	require.True(t, errors.As(err, &de), "want *DiscoveryError, got %T: %v", err, err)
	assert.Equal(t, KindIPv6, de.Kind)
	return de
}

// A job that cannot reach IPv6 fails on an AAAA fleet after discovery,
// before it sends anything: it says so instead of timing out on each.
func TestNoIPv6RefusesAAAAInstances(t *testing.T) {
	s := startDNS(t, "cdn.internal. IN AAAA fdaa::1", "cdn.internal. IN AAAA fdaa::2",
		"cdn.internal. IN AAAA fdaa::3", "cdn.internal. IN AAAA fdaa::4")
	j := Job{URLs: []string{"https://example.com/feed"}, DNSName: "cdn.internal", Resolver: s.Addr, Port: 9000}
	de := runNoIPv6(t, j)
	assert.Equal(t, "discover AAAA cdn.internal via "+s.Addr+": 4 of 4 instances have IPv6 addresses "+
		"([fdaa::1]:9000, [fdaa::2]:9000, [fdaa::3]:9000, and 1 more), and the network this job runs in has no IPv6", de.Error())

	// Without NoIPv6 the same job is planned as usual.
	p, err := j.Plan(context.Background())
	require.NoError(t, err)
	assert.Len(t, p.Instances, 4)
}

// A fleet of both families fails whole: purging only its IPv4 half would
// leave the rest stale without a word. The IPv4 instance gets nothing.
func TestNoIPv6RefusesMixedFleetsWhole(t *testing.T) {
	v4 := startInstance(t, "127.0.0.1", nil)
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	v6 := serveInstance(t, l, nil)
	de := runNoIPv6(t, job([]string{"https://example.com/"}, v4.addr, v6.addr))
	assert.Contains(t, de.Error(), "1 of 2 instances have IPv6 addresses ("+v6.addr+")")
	assert.Zero(t, v4.conns.Load(), "nothing was sent")
	assert.Zero(t, v6.conns.Load(), "nothing was sent")

	out := run(t, job([]string{"https://example.com/"}, v4.addr))
	assert.True(t, out.OK(), "IPv4 instances alone are purged")
	assert.Len(t, v4.requests(), 1)
}

// In edge mode the job connects to the connect address (or the URLs'
// hosts), not to the machines' private addresses: only those count.
func TestNoIPv6InEdgeModeLooksAtWhereItConnects(t *testing.T) {
	p := &plan{Job: Job{NoIPv6: true, Fly: Fly{App: "cdn"}}}
	ins := []Instance{{Host: "fdaa:0:1::2", Port: 80, MachineID: "m1"}}
	p.connect = "127.0.0.1:8080"
	assert.NoError(t, p.refuseIPv6(ins), "machines' 6PN addresses are not connected to")
	p.connect = "[fdaa::3]:80"
	err := p.refuseIPv6(ins)
	require.Error(t, err)
	assert.Equal(t, "discover Fly.io app cdn: edge mode would connect to IPv6 addresses ([fdaa::3]:80), and the network this job runs in has no IPv6", err.Error())
	p.connect = ""
	p.urls, err = parseURLs([]string{"https://example.com/", "http://[2001:db8::1]/a"}, nil, false)
	require.NoError(t, err)
	assert.ErrorContains(t, p.refuseIPv6(ins), "([2001:db8::1])")
}
