package purge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/internal/dnsserver"
)

func startDNS(t *testing.T, records ...string) *dnsserver.Server {
	t.Helper()
	s, err := dnsserver.Start("127.0.0.1")
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Add(records...))
	return s
}

func discoverErr(t *testing.T, d Discovery) *DiscoveryError {
	t.Helper()
	_, err := Discover(context.Background(), d)
	require.Error(t, err)
	var de *DiscoveryError
	require.True(t, errors.As(err, &de), "want *DiscoveryError, got %T: %v", err, err)
	return de
}

func TestDiscoverAAAA(t *testing.T) {
	s := startDNS(t,
		"cdn.internal. 5 IN AAAA fdaa::3",
		"cdn.internal. 5 IN AAAA fdaa::1",
		"cdn.internal. 5 IN AAAA fdaa::3", // duplicate
		"cdn.internal. 5 IN A 10.0.0.1",   // other type, ignored
	)
	got, err := Discover(context.Background(), Discovery{Name: "cdn.internal", Resolver: s.Addr, Port: 9000})
	require.NoError(t, err)
	assert.Equal(t, []Instance{{Host: "fdaa::1", Port: 9000}, {Host: "fdaa::3", Port: 9000}}, got)
	assert.Equal(t, "[fdaa::1]:9000", got[0].String())
}

func TestDiscoverA(t *testing.T) {
	s := startDNS(t, "cdn.example. IN A 10.0.0.2", "cdn.example. IN A 10.0.0.1")
	got, err := Discover(context.Background(), Discovery{Name: "CDN.example.", Record: RecordA, Resolver: s.Addr})
	require.NoError(t, err)
	assert.Equal(t, []Instance{{Host: "10.0.0.1", Port: 80}, {Host: "10.0.0.2", Port: 80}}, got)
}

func TestDiscoverSRV(t *testing.T) {
	s := startDNS(t,
		"_http._tcp.cdn.example. IN SRV 10 5 9000 a.cdn.example.",
		"_http._tcp.cdn.example. IN SRV 10 5 9001 b.cdn.example.",
		"a.cdn.example. IN AAAA fdaa::a",
		"a.cdn.example. IN A 10.0.0.10", // same host, both families: purged once, over IPv4
		"b.cdn.example. IN AAAA fdaa::b",
		"_http._tcp.cdn.example. IN SRV 10 5 9002 b.cdn.example.", // the same target twice: asked once
	)
	for _, chase := range []bool{true, false} {
		s.SetNoChase(!chase) // without chasing, the addresses are not in the additional section
		got, err := Discover(context.Background(), Discovery{Name: "_http._tcp.cdn.example", Record: RecordSRV, Resolver: s.Addr, Port: 1})
		require.NoError(t, err)
		assert.Equal(t, []Instance{{Host: "10.0.0.10", Port: 9000}, {Host: "fdaa::b", Port: 9001}, {Host: "fdaa::b", Port: 9002}}, got)
	}
	assert.Equal(t, 2, s.QueriesFor("b.cdn.example"), "each target is resolved once (A, then AAAA), and not at all when the answer had its addresses")
}

func TestDiscoverSRVServiceNotAvailable(t *testing.T) {
	for rr, want := range map[string]string{
		"_http._tcp.cdn.example. IN SRV 0 0 0 .":               `target "."`,
		"_http._tcp.cdn.example. IN SRV 10 5 0 a.cdn.example.": "port 0",
	} {
		s := startDNS(t, rr, "a.cdn.example. IN A 10.0.0.1")
		de := discoverErr(t, Discovery{Name: "_http._tcp.cdn.example", Record: RecordSRV, Resolver: s.Addr})
		assert.Equal(t, KindBadAnswer, de.Kind, rr)
		assert.Contains(t, de.Error(), want)
	}
}

func TestDiscoverRefusesAddressesThatAreNotAnInstances(t *testing.T) {
	for rr, why := range map[string]string{
		"cdn.internal. IN A 0.0.0.0":         "0.0.0.0, the unspecified address,",
		"cdn.internal. IN A 255.255.255.255": "255.255.255.255, the broadcast address,",
		"cdn.internal. IN A 224.0.0.1":       "224.0.0.1, a multicast address,",
		"cdn.internal. IN A 0.1.2.3":         `0.1.2.3, an address in 0.0.0.0/8 ("this network", RFC 1122: no host has one),`,
		"cdn.internal. IN A 240.0.0.1":       "240.0.0.1, a reserved address (240.0.0.0/4",
		"cdn.internal. IN AAAA ::":           "::, the unspecified address,",
		"cdn.internal. IN AAAA ff02::1":      "ff02::1, a multicast address,",
		"cdn.internal. IN AAAA fe80::1":      "fe80::1, a link-local address without a zone",
	} {
		s := startDNS(t, rr)
		rec := RecordA
		if strings.Contains(rr, "AAAA") {
			rec = RecordAAAA
		}
		de := discoverErr(t, Discovery{Name: "cdn.internal", Record: rec, Resolver: s.Addr})
		assert.Equal(t, KindBadAnswer, de.Kind, rr)
		assert.Contains(t, de.Error(), "the name lists "+why, rr)
		assert.Contains(t, de.Error(), "which cannot be an instance's", rr)
		assert.Equal(t, 1, strings.Count(de.Error(), "which"), "one sentence, one clause: %s", de.Error())
	}
	s := startDNS(t, "cdn.internal. IN A 224.0.0.1")
	de := discoverErr(t, Discovery{Name: "cdn.internal", Record: RecordA, Resolver: s.Addr})
	assert.Equal(t, "discover A cdn.internal via "+s.Addr+": the name lists 224.0.0.1, a multicast address, which cannot be an instance's", de.Error())
	// A static link-local address with its zone can be dialled; without
	// one it cannot.
	_, err := ParseInstance("[fe80::1%lo]:80", 80)
	assert.NoError(t, err)
	_, err = ParseInstance("[fe80::1]:80", 80)
	assert.EqualError(t, err, `instance "[fe80::1]:80": fe80::1 is a link-local address without a zone (the interface it is on): give the interface to reach it through, e.g. [fe80::1%eth0]`)
	_, err = ParseInstance("0.1.2.3", 80)
	assert.EqualError(t, err, `instance "0.1.2.3": 0.1.2.3 is an address in 0.0.0.0/8 ("this network", RFC 1122: no host has one), not an instance's`)
}

// 2,000 SRV targets that do not resolve: one line, with the count and the
// first few names, not 2,000.
func TestDiscoverManyUnresolvableSRVTargetsInOneLine(t *testing.T) {
	var rrs []string
	for i := range 2000 {
		rrs = append(rrs, fmt.Sprintf("_http._tcp.cdn.example. IN SRV 0 0 80 t%d.", i)) // short targets: SRV targets are never compressed
	}
	rrs = append(rrs, "other.cdn.example. IN A 10.0.0.1")
	s := startDNS(t, rrs...)
	de := discoverErr(t, Discovery{Name: "_http._tcp.cdn.example", Record: RecordSRV, Resolver: s.Addr})
	msg := de.Error()
	assert.NotContains(t, msg, "\n")
	assert.Less(t, len(msg), 600, msg)
	assert.Contains(t, msg, "2000 of 2000 SRV targets do not resolve (")
	assert.Contains(t, msg, " and 1997 more); the first: SRV target ")
}

// A static name resolved with --resolver: when that resolver is down, the
// error names it, not the system's.
func TestStaticNameWithDownResolverNamesIt(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	down := l.LocalAddr().String()
	require.NoError(t, l.Close())
	j := Job{URLs: []string{"http://e.com/"}, Instances: []string{"cdn-1.test:80"}, Resolver: down, DNSTimeout: 200 * time.Millisecond}
	_, err = j.Run(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), down)
	assert.NotContains(t, err.Error(), "127.0.0.53")

	// A name that resolves to an address no instance has reads as a sentence.
	s := startDNS(t, "cdn-0.test. IN A 0.0.0.0")
	j.Resolver, j.Instances = s.Addr, []string{"cdn-0.test:80"}
	_, err = j.Run(context.Background())
	assert.ErrorContains(t, err, "cdn-0.test resolves to 0.0.0.0, the unspecified address, which cannot be an instance's")
}

func TestDiscoverAsksAgainWithoutEDNS(t *testing.T) {
	s := startDNS(t, "cdn.internal. IN AAAA fdaa::1")
	s.SetNoEDNS(true)
	got, err := Discover(context.Background(), Discovery{Name: "cdn.internal", Resolver: s.Addr})
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

func TestDiscoverLargeUDPAnswerReadWhole(t *testing.T) {
	s := startDNS(t)
	s.SetNoTruncate(true)
	for i := 0; i < 1000; i++ {
		require.NoError(t, s.Add(fmt.Sprintf("big.internal. IN AAAA fdaa::%x", i+1)))
	}
	got, err := Discover(context.Background(), Discovery{Name: "big.internal", Resolver: s.Addr})
	require.NoError(t, err)
	assert.Len(t, got, 1000)
}

func TestDiscoverSRVTargetWithoutAddress(t *testing.T) {
	s := startDNS(t, "_http._tcp.cdn.example. IN SRV 10 5 9000 gone.cdn.example.")
	de := discoverErr(t, Discovery{Name: "_http._tcp.cdn.example", Record: RecordSRV, Resolver: s.Addr})
	assert.Equal(t, KindBadAnswer, de.Kind)
	assert.Contains(t, de.Error(), "gone.cdn.example")
}

func TestDiscoverCNAME(t *testing.T) {
	for _, chase := range []bool{true, false} {
		t.Run(fmt.Sprintf("server-chases=%v", chase), func(t *testing.T) {
			s := startDNS(t,
				"cdn.example. IN CNAME fleet.example.",
				"fleet.example. IN CNAME real.fleet.example.",
				"real.fleet.example. IN AAAA fdaa::7",
				"real.fleet.example. IN AAAA fdaa::8",
			)
			s.SetNoChase(!chase)
			got, err := Discover(context.Background(), Discovery{Name: "cdn.example", Resolver: s.Addr, Port: 80})
			require.NoError(t, err)
			assert.Equal(t, []Instance{{Host: "fdaa::7", Port: 80}, {Host: "fdaa::8", Port: 80}}, got)
		})
	}
}

func TestDiscoverCNAMELoop(t *testing.T) {
	s := startDNS(t, "a.example. IN CNAME b.example.", "b.example. IN CNAME a.example.")
	s.SetNoChase(true)
	de := discoverErr(t, Discovery{Name: "a.example", Resolver: s.Addr})
	assert.Equal(t, KindBadAnswer, de.Kind)
}

func TestDiscoverNXDOMAIN(t *testing.T) {
	s := startDNS(t, "cdn.internal. IN AAAA fdaa::1")
	de := discoverErr(t, Discovery{Name: "typo.internal", Resolver: s.Addr})
	assert.Equal(t, KindNXDomain, de.Kind)
	assert.Contains(t, de.Error(), "typo.internal")
	assert.Contains(t, de.Error(), "NXDOMAIN")
	assert.Contains(t, de.Error(), s.Addr)
}

func TestDiscoverServerErrors(t *testing.T) {
	for rc, word := range map[int]string{dns.RcodeServerFailure: "SERVFAIL", dns.RcodeRefused: "REFUSED"} {
		s := startDNS(t, "cdn.internal. IN AAAA fdaa::1")
		s.SetRcode("cdn.internal", rc)
		de := discoverErr(t, Discovery{Name: "cdn.internal", Resolver: s.Addr})
		assert.Equal(t, KindServerError, de.Kind)
		assert.Contains(t, de.Error(), word)
	}
}

func TestDiscoverEmptyAnswerSuggestsOtherType(t *testing.T) {
	s := startDNS(t, "cdn.internal. IN A 10.0.0.1")
	de := discoverErr(t, Discovery{Name: "cdn.internal", Resolver: s.Addr})
	assert.Equal(t, KindNoRecords, de.Kind)
	assert.Equal(t, "it has A records: use record type a", de.Hint())
	assert.NotContains(t, de.Error(), "record type a", "the remedy is the front end's to word")
	assert.Equal(t, RecordA, de.Suggest)

	s2 := startDNS(t, "cdn.internal. IN TXT \"nothing here\"")
	de = discoverErr(t, Discovery{Name: "cdn.internal", Resolver: s2.Addr})
	assert.Equal(t, KindNoRecords, de.Kind)
	assert.Contains(t, de.Hint(), "no AAAA, A or SRV records")
}

func TestDiscoverSlowResolver(t *testing.T) {
	s := startDNS(t, "cdn.internal. IN AAAA fdaa::1")
	s.SetDelay(time.Second)
	de := discoverErr(t, Discovery{Name: "cdn.internal", Resolver: s.Addr, Timeout: 100 * time.Millisecond})
	assert.Equal(t, KindTimeout, de.Kind)
	assert.Contains(t, de.Error(), s.Addr)
	assert.Contains(t, de.Error(), "did not answer")
}

// A lookup the run stopped says what stopped it (the job's deadline, the
// caller's cause), not that the resolver was slow: the limit that cut it
// is the one to change.
func TestDiscoverStoppedSaysWhy(t *testing.T) {
	s := startDNS(t, "cdn.internal. IN AAAA fdaa::1")
	s.SetDelay(time.Second)
	j := Job{URLs: []string{"https://e.com/"}, DNSName: "cdn.internal", Resolver: s.Addr, DNSTimeout: 5 * time.Second, Deadline: 50 * time.Millisecond}
	_, err := j.Run(context.Background())
	var de *DiscoveryError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, KindStopped, de.Kind)
	assert.Contains(t, de.Error(), "stopped waiting for resolver "+s.Addr+": the job's deadline passed")
	assert.ErrorIs(t, de, ErrDeadline)
	assert.Empty(t, de.Hint(), "no resolver advice: the resolver was not at fault")

	// Stopped by the caller (a signal) as the query waits for an answer
	// that never comes: the wait ends then, not when the DNS timeout (an
	// hour here) passes, and says why.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = silent.Close() })
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		_, _, _ = silent.ReadFrom(make([]byte, 512))
		cancel(errors.New("interrupted by SIGINT (Ctrl-C)"))
	}()
	done := make(chan error, 1)
	go func() {
		_, err := Discover(ctx, Discovery{Name: "cdn.internal", Resolver: silent.LocalAddr().String(), Timeout: time.Hour})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the lookup went on waiting after it was stopped")
	}
	require.ErrorAs(t, err, &de)
	assert.Equal(t, KindStopped, de.Kind)
	assert.Contains(t, de.Error(), "stopped waiting for resolver "+silent.LocalAddr().String()+": interrupted by SIGINT (Ctrl-C)")
	assert.NotErrorIs(t, de, ErrDeadline)

	// A caller's own deadline, without a cause.
	tctx, tcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer tcancel()
	_, err = Discover(tctx, Discovery{Name: "cdn.internal", Resolver: s.Addr})
	require.ErrorAs(t, err, &de)
	assert.Equal(t, KindStopped, de.Kind)
	assert.ErrorIs(t, de, context.DeadlineExceeded)
}

func TestDiscoverUnreachableResolver(t *testing.T) {
	// A UDP port nobody listens on: the kernel answers "port unreachable".
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := pc.LocalAddr().String()
	require.NoError(t, pc.Close())
	de := discoverErr(t, Discovery{Name: "cdn.internal", Resolver: addr, Timeout: time.Second})
	assert.Contains(t, []ErrorKind{KindUnreachable, KindTimeout}, de.Kind)
	assert.Contains(t, de.Error(), addr)
}

func TestDiscoverLargeFleetFallsBackToTCP(t *testing.T) {
	s := startDNS(t)
	const n = 1000
	for i := 0; i < n; i++ {
		require.NoError(t, s.Add(fmt.Sprintf("big.internal. IN AAAA fdaa::%x", i+1)))
	}
	got, err := Discover(context.Background(), Discovery{Name: "big.internal", Resolver: s.Addr, Port: 9000})
	require.NoError(t, err)
	assert.Len(t, got, n)
	udp, tcp := s.Queries()
	assert.Equal(t, int64(1), udp)
	assert.Equal(t, int64(1), tcp, "a truncated answer must be asked again over TCP")
}

func TestDiscoverConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		d    Discovery
		want string
	}{
		{Discovery{Name: "", Resolver: "127.0.0.1:53"}, "no DNS name"},
		{Discovery{Name: "https://cdn.example/x", Resolver: "127.0.0.1:53"}, "not a DNS name"},
		{Discovery{Name: "cdn.example", Record: "mx", Resolver: "127.0.0.1:53"}, "use aaaa, a or srv"},
		{Discovery{Name: "cdn.example", Port: 70000, Resolver: "127.0.0.1:53"}, "out of range"},
		{Discovery{Name: "cdn.example", Resolver: "not a resolver!"}, "HOST:PORT"},
		{Discovery{Name: "cdn.example", ResolvConf: "/nonexistent/resolv.conf"}, "give a resolver address"},
	} {
		de := discoverErr(t, tc.d)
		assert.Equal(t, KindConfig, de.Kind, tc.want)
		assert.Contains(t, de.Error(), tc.want)
	}
}

func TestResolverFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "resolv.conf")
	require.NoError(t, os.WriteFile(f, []byte("# comment\nsearch example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"), 0o644))
	got, err := resolverAddrs("", f)
	require.NoError(t, err)
	assert.Equal(t, []string{"192.0.2.53:53", "192.0.2.54:53"}, got)

	require.NoError(t, os.WriteFile(f, []byte("search example\n"), 0o644))
	_, err = resolverAddrs("", f)
	assert.ErrorContains(t, err, "no nameserver")

	got, err = resolverAddrs("fdaa::3", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"[fdaa::3]:53"}, got)
}

func TestResolverFallsBackToNextNameserver(t *testing.T) {
	s := startDNS(t, "cdn.internal. IN AAAA fdaa::1")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := pc.LocalAddr().String()
	require.NoError(t, pc.Close())

	r := &resolver{servers: []string{dead, s.Addr}, timeout: time.Second}
	got, err := r.addrs(context.Background(), "cdn.internal", dns.TypeAAAA)
	require.NoError(t, err)
	assert.Len(t, got, 1)

	r = &resolver{servers: []string{dead, dead}, timeout: 200 * time.Millisecond}
	_, err = r.addrs(context.Background(), "cdn.internal", dns.TypeAAAA)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no resolver answered")
	assert.Contains(t, err.Error(), dead)
	assert.Contains(t, []ErrorKind{KindUnreachable, KindTimeout}, kindOf(err))
}
