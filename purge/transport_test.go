package purge

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cdnpurge/cdnpurge/internal/hostile"
)

// A Transport shared by runs, held to what the instances saw: connections
// accepted, requests received, where on a connection each arrived.

func prefixed(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("http://e.com/%s/%d", prefix, i)
	}
	return out
}

// tracked is a net/http instance that counts the connections it accepted
// and those closed.
func tracked(t *testing.T) (in *instance, closed *atomic.Int64) {
	t.Helper()
	closed = &atomic.Int64{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	in = &instance{addr: l.Addr().String()}
	in.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		in.reqs = append(in.reqs, seen{Method: r.Method, Host: r.Host, RequestURI: r.RequestURI})
		in.mu.Unlock()
	})}}
	in.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			in.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			closed.Add(1)
		}
	}
	in.srv.Start()
	t.Cleanup(in.srv.Close)
	return in, closed
}

// Runs one after another share connections: the second run dials none.
func TestTransportReusesConnectionsAcrossRuns(t *testing.T) {
	in, _ := tracked(t)
	tr := &Transport{}
	defer tr.Close()
	j := job(prefixed("a", 200), in.addr)
	j.Transport, j.PerInstance = tr, 1
	require.True(t, run(t, j).OK())
	first := in.conns.Load()
	require.Equal(t, int64(1), first)
	for i := range 3 {
		j.URLs = prefixed(fmt.Sprint("b", i), 200)
		out := run(t, j)
		require.True(t, out.OK(), out.Purge.Summary())
	}
	assert.Equal(t, first, in.conns.Load(), "later runs took the connections the first left")
	assert.Len(t, in.requests(), 4*200, "every request received once")

	// Without a transport each run dials its own.
	j.Transport = nil
	require.True(t, run(t, j).OK())
	assert.Greater(t, in.conns.Load(), first)
}

// depthServer answers each request at once until deep is set; then it
// answers a connection's requests only once 8 of them have arrived, which
// a client that starts a connection with one request in flight never
// sends.
func depthServer(t *testing.T, deep *atomic.Bool) *hostile.Instance {
	return hostile.Start(t, func(c *hostile.Conn) {
		waiting := 0
		for {
			if _, err := c.ReadRequest(); err != nil {
				return
			}
			if !deep.Load() {
				c.Answer(200, "")
				continue
			}
			if waiting++; waiting == 8 {
				for range waiting {
					c.Answer(200, "")
				}
				waiting = 0
			}
		}
	})
}

// What an instance proved it pipelines is where the next run starts, on a
// kept connection or a new one: a batch of 8 at once.
func TestTransportRemembersDepth(t *testing.T) {
	var deep atomic.Bool
	in := depthServer(t, &deep)
	tr := &Transport{}
	defer tr.Close()
	j := Job{URLs: prefixed("a", 64), Instances: []string{in.Addr}, Pipeline: 8, PerInstance: 1, Timeout: 2 * time.Second, Transport: tr}
	require.True(t, run(t, j).OK())
	deep.Store(true)

	j.URLs = prefixed("b", 8)
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	assert.Equal(t, 1, in.Conns(), "the kept connection")

	tr.CloseIdleConnections()
	j.URLs = prefixed("c", 8)
	out = run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	assert.Equal(t, 2, in.Conns(), "a new connection, as deep as the instance proved")
	for _, r := range results(out.Purge) {
		assert.Equal(t, 1, r.Attempts, r.URL)
	}

	// Forgotten: a new connection starts with one request again, and the
	// instance that waits for 8 leaves it without an answer.
	tr.Forget(Instance{Host: "127.0.0.1", Port: in.Conns()}) // not this instance: nothing changes
	ins, err := Job{Instances: []string{in.Addr}, URLs: []string{"http://e.com/"}}.Find(context.Background())
	require.NoError(t, err)
	tr.Forget(ins.Instances[0])
	j.URLs, j.Timeout, j.Attempts = prefixed("d", 8), 200*time.Millisecond, 1
	assert.False(t, run(t, j).OK())
}

// A keep-alive limit (a close after 3 answers, unannounced) learned by one
// run: the next sends no connection past it, so nothing is written twice.
// Once it is no longer remembered, it is learned anew.
func TestTransportRemembersKeepAliveLimit(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		c.Answer(200, "")
		if r.Seq == 2 {
			c.End()
		}
	}))
	twice := func(out *Outcome) int {
		n := 0
		for _, r := range results(out.Purge) {
			if r.Attempts > 1 {
				n++
			}
		}
		return n
	}
	tr := &Transport{}
	defer tr.Close()
	j := Job{URLs: prefixed("a", 30), Instances: []string{in.Addr}, PerInstance: 1, Timeout: 2 * time.Second, Backoff: time.Millisecond, Transport: tr}
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	holdToRecord(t, out.Purge, in)
	require.Positive(t, twice(out), "the first run learns the limit by writing past it")

	j.URLs = prefixed("b", 30)
	out = run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	holdToRecord(t, out.Purge, in)
	assert.Zero(t, twice(out), "no request written past the limit")
	for _, r := range in.Requests() {
		assert.Less(t, r.Seq, 3)
	}

	forgetful := &Transport{RememberFor: time.Nanosecond}
	defer forgetful.Close()
	j.Transport = forgetful
	require.True(t, run(t, j).OK())
	j.URLs = prefixed("c", 30)
	out = run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	assert.Positive(t, twice(out), "forgotten: learned again")
}

// An instance that answers the first request of each connection and then
// stays silent costs the first run one timeout; the next run gives it one
// request per connection from the start, and waits for nothing.
func TestTransportRemembersOneAtATime(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		if r.Seq > 0 {
			c.Hold()
			return
		}
		c.Answer(200, "")
	}))
	tr := &Transport{}
	defer tr.Close()
	j := Job{URLs: prefixed("a", 16), Instances: []string{in.Addr}, Timeout: time.Second, Backoff: time.Millisecond, Transport: tr}
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	holdToRecord(t, out.Purge, in)
	before := len(in.Requests())

	j.URLs, j.Timeout = prefixed("b", 16), 5*time.Second // never waited for

	out = run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	holdToRecord(t, out.Purge, in)
	later := in.Requests()[before:]
	assert.Len(t, later, 16)
	for _, r := range later {
		assert.Zero(t, r.Seq, "%s arrived behind another request on its connection", r.Target)
	}
	for _, r := range results(out.Purge) {
		assert.Equal(t, 1, r.Attempts, r.URL)
	}
}

// closer is a raw instance that answers every request and lets the test
// close the connections it holds (or reset them: SO_LINGER 0).
type closer struct {
	*rawServer
	mu   sync.Mutex
	open []net.Conn
}

func startCloser(t *testing.T) *closer {
	c := &closer{}
	c.rawServer = startRaw(t, func(s *rawServer, nc net.Conn, br *bufio.Reader) {
		c.mu.Lock()
		c.open = append(c.open, nc)
		c.mu.Unlock()
		for {
			if _, _, err := s.readRequest(br); err != nil {
				return
			}
			_, _ = nc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		}
	})
	return c
}

func (c *closer) closeAll(reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nc := range c.open {
		if reset {
			_ = nc.(*net.TCPConn).SetLinger(0)
		}
		_ = nc.Close()
	}
}

// idlePeeks are the kernel's view (see peek) of tr's idle connections.
func idlePeeks(tr *Transport) []int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []int
	for _, h := range tr.hosts {
		for _, pc := range h.idle {
			if pc.tcp == nil {
				out = append(out, 0) // TLS: not looked into
				continue
			}
			out = append(out, peek(pc.tcp))
		}
	}
	return out
}

// A kept connection the instance closes as a batch arrives on it (it reads
// the requests, answers none, and closes): the requests were written, so
// they count as attempts and the instance's record holds them, but they
// are sent again on a new connection without using an attempt.
func TestTransportConnectionClosedAsReused(t *testing.T) {
	var second atomic.Bool
	firstConns := map[int]bool{}
	var mu sync.Mutex
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		mu.Lock()
		old := firstConns[c.N]
		if !second.Load() {
			firstConns[c.N] = true
		}
		mu.Unlock()
		if second.Load() && old {
			c.End() // read, never answered
			return
		}
		c.Answer(200, "")
	}))
	tr := &Transport{}
	defer tr.Close()
	j := Job{URLs: prefixed("a", 10), Instances: []string{in.Addr}, PerInstance: 1, Attempts: 1, Timeout: 2 * time.Second, Transport: tr}
	require.True(t, run(t, j).OK())
	second.Store(true)

	j.URLs = prefixed("b", 10)
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	holdToRecord(t, out.Purge, in)
	resent := 0
	for _, r := range results(out.Purge) {
		assert.LessOrEqual(t, r.Attempts, 2, r.URL)
		if r.Attempts == 2 {
			resent++
		}
	}
	assert.Positive(t, resent, "the batch written on the closed connection is sent again")
	assert.Equal(t, 2, in.Conns())
}

// Runs at once share the transport: every URL of every run reaches every
// instance once, and connections are reused rather than piled up.
func TestTransportConcurrentRuns(t *testing.T) {
	a, _ := tracked(t)
	b, _ := tracked(t)
	tr := &Transport{MaxIdlePerInstance: 8}
	defer tr.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 5 {
				j := job(prefixed(fmt.Sprintf("%d-%d", g, r), 50), a.addr, b.addr)
				j.Transport = tr
				out, err := j.Run(context.Background())
				if assert.NoError(t, err) {
					assert.True(t, out.OK(), out.Purge.Summary())
				}
			}
		}()
	}
	wg.Wait()
	for _, in := range []*instance{a, b} {
		got := map[string]int{}
		for _, r := range in.requests() {
			got[r.RequestURI]++
		}
		assert.Len(t, got, 8*5*50)
		for u, n := range got {
			assert.Equal(t, 1, n, u)
		}
		assert.LessOrEqual(t, in.conns.Load(), int64(8), "at most one connection per run at once, each kept for the next")
	}
}

// Idle connections are closed after IdleTimeout (the instance sees them
// go), and nothing of the transport outlives Close.
func TestTransportIdleTimeout(t *testing.T) {
	in, closed := tracked(t)
	before := goleak.IgnoreCurrent()
	tr := &Transport{IdleTimeout: 50 * time.Millisecond}
	j := job(prefixed("a", 100), in.addr)
	j.Transport = tr
	require.True(t, run(t, j).OK())
	opened := in.conns.Load()
	require.Eventually(t, func() bool { return closed.Load() == opened }, 5*time.Second, 5*time.Millisecond,
		"the instance sees every idle connection closed")
	assert.Empty(t, idlePeeks(tr))

	j.URLs = prefixed("b", 100)
	require.True(t, run(t, j).OK())
	assert.Greater(t, in.conns.Load(), opened, "new connections after the timeout")
	require.NoError(t, tr.Close())
	require.Eventually(t, func() bool { return closed.Load() == in.conns.Load() }, 5*time.Second, 5*time.Millisecond)
	goleak.VerifyNone(t, before)
}

// After Close the transport keeps nothing, and runs still work.
func TestTransportClose(t *testing.T) {
	in, closed := tracked(t)
	tr := &Transport{}
	j := job(prefixed("a", 10), in.addr)
	j.Transport = tr
	require.True(t, run(t, j).OK())
	require.NoError(t, tr.Close())
	require.Eventually(t, func() bool { return closed.Load() == in.conns.Load() }, 5*time.Second, 5*time.Millisecond)
	j.URLs = prefixed("b", 10)
	require.True(t, run(t, j).OK())
	assert.Empty(t, idlePeeks(tr), "nothing kept after Close")
	require.Eventually(t, func() bool { return closed.Load() == in.conns.Load() }, 5*time.Second, 5*time.Millisecond)
}

// At most MaxIdlePerInstance idle connections per instance.
func TestTransportMaxIdle(t *testing.T) {
	in, _ := tracked(t)
	tr := &Transport{MaxIdlePerInstance: 1}
	defer tr.Close()
	j := job(prefixed("a", 1000), in.addr) // up to 4 connections
	j.Transport = tr
	require.True(t, run(t, j).OK())
	assert.Len(t, idlePeeks(tr), 1)
}

// A connection made without checking the certificate is never given to a
// run that checks it.
func TestTransportKeepsTLSSettingsApart(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tr := &Transport{}
	defer tr.Close()
	j := job([]string{"http://not-in-cert.test/x"}, srv.Listener.Addr().String())
	j.Scheme, j.Attempts, j.Insecure, j.Transport = "https", 1, true, tr
	require.True(t, run(t, j).OK())
	require.Len(t, idlePeeks(tr), 1)

	j.Insecure = false
	j.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	assert.Contains(t, errText(run(t, j).Purge.Result(0)), "certificate")
}

// A run without a transport shares its connections between its steps (the
// purge, then each verify step), and leaves none open when it returns.
func TestRunOwnTransportAcrossSteps(t *testing.T) {
	in, closed := tracked(t)
	j := job(prefixed("a", 20), in.addr)
	j.PerInstance, j.Verify = 1, []Expect{ExpectAny, ExpectAny}
	out := run(t, j)
	require.Len(t, out.Verify, 2)
	require.Len(t, in.requests(), 3*20)
	assert.Equal(t, int64(1), in.conns.Load(), "one connection for the purge and both checks")
	require.Eventually(t, func() bool { return closed.Load() == in.conns.Load() }, 5*time.Second, 5*time.Millisecond,
		"closed when the run is over")
}
