package fleet_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/purge"
)

// backend is a member that echoes what it received, for tests of the edge
// without varnishd.
type backend struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func (b *backend) requests() []*http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*http.Request(nil), b.seen...)
}

// fakeFleet is a fleet whose members are plain HTTP servers.
func fakeFleet(t *testing.T, n int) (*fleet.Fleet, []*backend) {
	t.Helper()
	f := &fleet.Fleet{Mode: fleet.ModeExternal}
	var bs []*backend
	for i := range n {
		b := &backend{name: fmt.Sprintf("cdn-%d", i+1)}
		b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.mu.Lock()
			b.seen = append(b.seen, r)
			b.mu.Unlock()
			w.Header().Set("X-Member", b.name)
			w.Header().Set("Cache-Status", b.name+"; fwd=miss")
			w.WriteHeader(http.StatusOK)
			if r.Method != http.MethodHead {
				_, _ = fmt.Fprintf(w, "%s %s %s host=%s\n", b.name, r.Method, r.RequestURI, r.Host)
			}
		}))
		t.Cleanup(b.srv.Close)
		in, err := purge.ParseInstance(b.srv.Listener.Addr().String(), 80)
		require.NoError(t, err)
		f.Members = append(f.Members, &fleet.Member{Name: b.name, Instance: in})
		bs = append(bs, b)
	}
	return f, bs
}

func startFly(t *testing.T, f *fleet.Fleet, o fleet.FlyOptions) *fleet.FlyEdge {
	t.Helper()
	e, err := f.StartFly(o)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, e.Close()) })
	return e
}

// noLeaks checks, when the test and its cleanups are done, that nothing it
// started still runs.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func getAPI(t *testing.T, e *fleet.FlyEdge, path, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.API+path, nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestFlyMachinesAPI(t *testing.T) {
	noLeaks(t)
	f, _ := fakeFleet(t, 3)
	e := startFly(t, f, fleet.FlyOptions{App: "my-cdn", Token: "tok-1", Regions: []string{"", "lhr"},
		Extra: []fleet.FlyMachine{{}, {State: "suspended", Region: "nrt", Name: "napping"}}})

	status, body := getAPI(t, e, "/v1/apps/my-cdn/machines", "Bearer tok-1")
	require.Equal(t, http.StatusOK, status, body)
	var ms []map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &ms))
	require.Len(t, ms, 5)
	for _, m := range ms {
		assert.Regexp(t, `^[0-9a-f]{14}$`, m["id"])
		assert.Contains(t, m["private_ip"], "fdaa:")
	}
	want := []struct{ name, state, region string }{
		{"cdn-1", "started", "iad"}, {"cdn-2", "started", "lhr"}, {"cdn-3", "started", "ams"},
		{"extra-1", "stopped", "fra"}, {"napping", "suspended", "nrt"},
	}
	for i, w := range want {
		assert.Equal(t, w.name, ms[i]["name"])
		assert.Equal(t, w.state, ms[i]["state"])
		assert.Equal(t, w.region, ms[i]["region"])
		assert.Equal(t, e.Machines()[i].ID, ms[i]["id"])
	}
	assert.Same(t, f.Members[1], e.Machine(1).Member)
	assert.Nil(t, e.Machines()[3].Member)

	status, body = getAPI(t, e, "/v1/apps/my-cdn/machines", "Bearer wrong")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.JSONEq(t, `{"error":"unauthorized"}`, body)
	status, _ = getAPI(t, e, "/v1/apps/my-cdn/machines", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _ = getAPI(t, e, "/v1/apps/my-cdn/machines", "tok-1")
	assert.Equal(t, http.StatusUnauthorized, status, "a token without its scheme is refused")
	status, body = getAPI(t, e, "/v1/apps/other/machines", "Bearer tok-1")
	assert.Equal(t, http.StatusNotFound, status)
	assert.JSONEq(t, `{"error":"app not found"}`, body)

	require.NoError(t, e.SetState(e.Machine(2).ID, "stopped"))
	_, body = getAPI(t, e, "/v1/apps/my-cdn/machines", "Bearer tok-1")
	assert.Contains(t, body, `"name":"cdn-3","state":"stopped"`)
	assert.Error(t, e.SetState(e.Machines()[3].ID, "started"), "nothing runs behind an extra machine")
	assert.Error(t, e.SetState("00000000000000", "started"))
}

func TestFlyMacaroonToken(t *testing.T) {
	f, _ := fakeFleet(t, 1)
	e := startFly(t, f, fleet.FlyOptions{Token: "FlyV1 fm2_abc,fm2_def"})
	status, _ := getAPI(t, e, "/v1/apps/"+fleet.DefaultFlyApp+"/machines", "FlyV1 fm2_abc,fm2_def")
	assert.Equal(t, http.StatusOK, status)
	status, _ = getAPI(t, e, "/v1/apps/"+fleet.DefaultFlyApp+"/machines", "Bearer fm2_abc,fm2_def")
	assert.Equal(t, http.StatusOK, status)
	status, _ = getAPI(t, e, "/v1/apps/"+fleet.DefaultFlyApp+"/machines", "FlyV1 fm2_abc")
	assert.Equal(t, http.StatusUnauthorized, status)
}

func TestFlyStartRefusesStartedExtra(t *testing.T) {
	f, _ := fakeFleet(t, 1)
	_, err := f.StartFly(fleet.FlyOptions{Extra: []fleet.FlyMachine{{State: "started"}}})
	assert.ErrorContains(t, err, "nothing runs behind it")
}

// edgeDo sends one request to the edge on a new connection.
func edgeDo(t *testing.T, addr string, req *http.Request) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, req.Write(c))
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func newReq(t *testing.T, method, target, host, id string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+host+target, nil)
	require.NoError(t, err)
	if id != "" {
		req.Header.Set("Fly-Force-Instance-Id", id)
	}
	req.Header.Set("Purge-Token", "t0k")
	return req
}

func TestFlyEdgeRoutesByMachineID(t *testing.T) {
	noLeaks(t)
	f, bs := fakeFleet(t, 3)
	e := startFly(t, f, fleet.FlyOptions{Extra: []fleet.FlyMachine{{State: "stopped"}}})

	for i, b := range bs {
		id := e.Machine(i).ID
		resp, body := edgeDo(t, e.Addr, newReq(t, "PURGE", "/a%20b/x?q=1", "example.com", id))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, b.name, resp.Header.Get("X-Member"))
		assert.Equal(t, b.name+"; fwd=miss", resp.Header.Get("Cache-Status"))
		assert.Equal(t, "1.1 fly.io", resp.Header.Get("Via"))
		assert.Equal(t, b.name+" PURGE /a%20b/x?q=1 host=example.com\n", body)
		got := b.requests()
		require.Len(t, got, 1)
		assert.Equal(t, "example.com", got[0].Host)
		assert.Equal(t, "t0k", got[0].Header.Get("Purge-Token"))
		assert.Equal(t, id, got[0].Header.Get("Fly-Force-Instance-Id"))
		assert.Equal(t, 1, e.Requests(id))
	}

	resp, _ := edgeDo(t, e.Addr, newReq(t, "PURGE", "/", "example.com", strings.ToUpper(e.Machine(0).ID)))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "ids are matched exactly")
	resp, body := edgeDo(t, e.Addr, newReq(t, http.MethodGet, "/", "example.com", "0123456789abcd"))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "no known healthy instances found for route: app "+fleet.DefaultFlyApp+" has no machine 0123456789abcd\n", body)

	stopped := e.Machines()[3].ID
	resp, body = edgeDo(t, e.Addr, newReq(t, "PURGE", "/", "example.com", stopped))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "no known healthy instances found for route: machine "+stopped+" is stopped\n", body)

	// Without the header: the nearest started machine.
	require.NoError(t, e.SetState(e.Machine(0).ID, "stopped"))
	resp, _ = edgeDo(t, e.Addr, newReq(t, http.MethodGet, "/any", "example.com", ""))
	assert.Equal(t, bs[1].name, resp.Header.Get("X-Member"))
	assert.Equal(t, 1, e.Requests(""))
	resp, _ = edgeDo(t, e.Addr, newReq(t, "PURGE", "/", "example.com", e.Machine(0).ID))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "a machine set to stopped is no longer routed to")
	for i := range bs {
		require.NoError(t, e.SetState(e.Machine(i).ID, "stopped"))
	}
	resp, body = edgeDo(t, e.Addr, newReq(t, http.MethodGet, "/any", "example.com", ""))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, body, "has no started machine")
}

func TestFlyEdgeKeepAliveAndPipelining(t *testing.T) {
	noLeaks(t)
	f, bs := fakeFleet(t, 2)
	e := startFly(t, f, fleet.FlyOptions{})
	c, err := net.Dial("tcp", e.Addr)
	require.NoError(t, err)
	defer c.Close()
	// Six requests at once on one connection, alternating machines, with
	// HEAD among them: the answers must come back in order, one each.
	var raw strings.Builder
	type sent struct{ method, member string }
	var want []sent
	for k := range 6 {
		i := k % 2
		method := "PURGE"
		if k%3 == 2 {
			method = http.MethodHead
		}
		fmt.Fprintf(&raw, "%s /p%d HTTP/1.1\r\nHost: example.com\r\nFly-Force-Instance-Id: %s\r\n\r\n", method, k, e.Machine(i).ID)
		want = append(want, sent{method, bs[i].name})
	}
	_, err = io.WriteString(c, raw.String())
	require.NoError(t, err)
	br := bufio.NewReader(c)
	for k, w := range want {
		resp, err := http.ReadResponse(br, &http.Request{Method: w.method})
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, w.member, resp.Header.Get("X-Member"), "answer %d", k)
		if w.method == http.MethodHead {
			assert.Empty(t, b)
		} else {
			assert.Equal(t, fmt.Sprintf("%s PURGE /p%d host=example.com\n", w.member, k), string(b))
		}
		assert.False(t, resp.Close, "the connection stays open")
	}
	assert.Len(t, bs[0].requests(), 3)
	assert.Len(t, bs[1].requests(), 3)
}

func TestFlyEdgeTLS(t *testing.T) {
	noLeaks(t)
	f, bs := fakeFleet(t, 1)
	e := startFly(t, f, fleet.FlyOptions{TLSHost: "cdn.example"})
	require.NotEmpty(t, e.TLSAddr)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: e.RootCAs, ServerName: "cdn.example"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, e.TLSAddr)
		},
	}
	defer tr.CloseIdleConnections()
	req := newReq(t, "PURGE", "/feed", "cdn.example", e.Machine(0).ID)
	req.URL.Scheme = "https"
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "HTTP/1.1", resp.Proto)
	assert.Equal(t, "cdn.example", bs[0].requests()[0].Host)

	// Another name does not match the certificate.
	tr2 := tr.Clone()
	tr2.TLSClientConfig.ServerName = "other.example"
	defer tr2.CloseIdleConnections()
	_, err = tr2.RoundTrip(newReq(t, "PURGE", "/feed", "other.example", e.Machine(0).ID))
	assert.Error(t, err)
}

func TestFlyCloseEndsRequestsInFlight(t *testing.T) {
	noLeaks(t)
	release := make(chan struct{})
	defer close(release)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	in, err := purge.ParseInstance(slow.Listener.Addr().String(), 80)
	require.NoError(t, err)
	f := &fleet.Fleet{Members: []*fleet.Member{{Name: "slow", Instance: in}}}
	e, err := f.StartFly(fleet.FlyOptions{})
	require.NoError(t, err)
	c, err := net.Dial("tcp", e.Addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nFly-Force-Instance-Id: %s\r\n\r\n", e.Machine(0).ID)
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for e.Requests(e.Machine(0).ID) == 0 {
		require.True(t, time.Now().Before(deadline), "the edge never received the request")
		time.Sleep(time.Millisecond)
	}
	done := make(chan error)
	go func() { done <- e.Close() }()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a request in flight")
	}
	assert.NoError(t, e.Close(), "Close twice")
}

// TestFlyStopMachine runs real varnishd: a stopped member's machine stays
// listed as started and the edge answers 502 for it.
func TestFlyStopMachine(t *testing.T) {
	f := fleettest.Start(t, fleet.Options{N: 2})
	e := startFly(t, f, fleet.FlyOptions{})
	get := func(i int) (*http.Response, string) {
		return edgeDo(t, e.Addr, newReq(t, http.MethodGet, "/episodes/1", "cdnpurge.example", e.Machine(i).ID))
	}
	for i := range 2 {
		resp, _ := get(i)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("Cache-Status"), f.Members[i].Name)
	}
	id := e.Machine(1).ID
	require.NoError(t, e.Stop(id))
	resp, body := get(1)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, "could not send HTTP request to instance "+id+": connection error: connection refused\n", body)
	assert.Equal(t, "started", e.Machine(1).State, "the platform has not noticed")
	resp, _ = get(0)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, e.Requests(id))
}
