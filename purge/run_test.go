package purge

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// seen is one request as an instance received it.
type seen struct {
	Method, Host, RequestURI, UA, Token string
	Header                              http.Header
}

// instance is a real HTTP listener that records what it receives.
type instance struct {
	srv   *httptest.Server
	inst  Instance
	mu    sync.Mutex
	reqs  []seen
	conns atomic.Int64
}

func (i *instance) requests() []seen {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]seen(nil), i.reqs...)
}

func startInstance(t *testing.T, host string, h http.HandlerFunc) *instance {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	require.NoError(t, err)
	in := &instance{}
	in.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		in.reqs = append(in.reqs, seen{r.Method, r.Host, r.RequestURI, r.UserAgent(), r.Header.Get("Purge-Token"), r.Header.Clone()})
		in.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	})}}
	in.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			in.conns.Add(1)
		}
	}
	in.srv.Start()
	t.Cleanup(in.srv.Close)
	addr := l.Addr().(*net.TCPAddr)
	in.inst = Instance{Host: addr.IP.String(), Port: addr.Port}
	return in
}

// silentInstance accepts requests and never answers them.
func silentInstance(t *testing.T) *instance {
	block := make(chan struct{})
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(block) })
	return in
}

func mustURLs(t *testing.T, raw ...string) []*url.URL {
	t.Helper()
	var out []*url.URL
	for _, r := range raw {
		u, err := ParseURL(r)
		require.NoError(t, err)
		out = append(out, u)
	}
	return out
}

func fastOpts() Options {
	return Options{Timeout: 2 * time.Second, Backoff: time.Millisecond}
}

func TestRunSendsPurgeWithHostPathQueryAndToken(t *testing.T) {
	a := startInstance(t, "127.0.0.1", nil)
	b := startInstance(t, "::1", nil) // IPv6 must be bracketed
	o := fastOpts()
	o.Token = "s3cret-token"
	o.Header = http.Header{"Xkey": {"post-1"}}
	rep, err := Run(context.Background(), o, []Instance{a.inst, b.inst}, mustURLs(t, "https://changelog.com/a%20b/podcast?x=1&y=2"))
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())
	for _, in := range []*instance{a, b} {
		reqs := in.requests()
		require.Len(t, reqs, 1)
		r := reqs[0]
		assert.Equal(t, "PURGE", r.Method)
		assert.Equal(t, "changelog.com", r.Host)
		assert.Equal(t, "/a%20b/podcast?x=1&y=2", r.RequestURI)
		assert.Equal(t, "cdnpurge/"+Version, r.UA)
		assert.Equal(t, "s3cret-token", r.Token)
		assert.Equal(t, "post-1", r.Header.Get("Xkey"))
	}
	assert.Equal(t, "[::1]:"+strconv.Itoa(b.inst.Port), rep.Results[1].Instance)
	assert.Equal(t, "purged 1 URL on 2/2 instances", strings.Split(rep.Summary(), " in ")[0])
}

func TestRunNoTokenHeaderWithoutToken(t *testing.T) {
	a := startInstance(t, "127.0.0.1", nil)
	o := fastOpts()
	o.Method = "BAN"
	o.TokenHeader = "X-Other"
	rep, err := Run(context.Background(), o, []Instance{a.inst}, mustURLs(t, "http://example.com:8080/"))
	require.NoError(t, err)
	require.True(t, rep.OK())
	r := a.requests()[0]
	assert.Equal(t, "BAN", r.Method)
	assert.Equal(t, "example.com:8080", r.Host)
	_, hasPurgeToken := r.Header["Purge-Token"]
	_, hasOther := r.Header["X-Other"]
	assert.False(t, hasPurgeToken)
	assert.False(t, hasOther)
}

func TestRunCustomTokenHeader(t *testing.T) {
	a := startInstance(t, "127.0.0.1", nil)
	o := fastOpts()
	o.Token, o.TokenHeader = "tok", "x-purge-key"
	_, err := Run(context.Background(), o, []Instance{a.inst}, mustURLs(t, "http://example.com/"))
	require.NoError(t, err)
	assert.Equal(t, "tok", a.requests()[0].Header.Get("X-Purge-Key"))
	assert.Empty(t, a.requests()[0].Token)
}

func TestRunRetries503ThenSucceeds(t *testing.T) {
	var n atomic.Int64
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	rep, err := Run(context.Background(), fastOpts(), []Instance{a.inst}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())
	assert.Equal(t, 2, rep.Results[0].Attempts)
	assert.Equal(t, 200, rep.Results[0].Status)
}

func TestRunGivesUpAfterRetries(t *testing.T) {
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "backend sick", http.StatusBadGateway)
	})
	o := fastOpts()
	o.Retries = 3
	rep, err := Run(context.Background(), o, []Instance{a.inst}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Equal(t, 4, rep.Results[0].Attempts)
	assert.Len(t, a.requests(), 4)
	assert.Contains(t, rep.Results[0].Error, "502 Bad Gateway: backend sick")
}

func TestRun401NotRetried(t *testing.T) {
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad token", http.StatusUnauthorized)
	})
	o := fastOpts()
	o.Token = "wrong"
	rep, err := Run(context.Background(), o, []Instance{a.inst}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Equal(t, 1, rep.Results[0].Attempts)
	assert.Len(t, a.requests(), 1)
	assert.Equal(t, "token rejected by "+a.inst.String()+": 401 Unauthorized", rep.Results[0].Error)

	o.Token = ""
	rep, err = Run(context.Background(), o, []Instance{a.inst}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	assert.Contains(t, rep.Results[0].Error, "no token was sent")
}

func TestRunConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	o := fastOpts()
	o.Retries = 1
	rep, err := Run(context.Background(), o, []Instance{{"127.0.0.1", port}}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Equal(t, 2, rep.Results[0].Attempts, "connection errors are retried")
	assert.Contains(t, rep.Results[0].Error, "connection refused")
	assert.Equal(t, 0, rep.Results[0].Status)
}

func TestRunInstanceThatNeverAnswersTimesOut(t *testing.T) {
	a := silentInstance(t)
	o := fastOpts()
	o.Timeout = 100 * time.Millisecond
	o.Retries = -1
	rep, err := Run(context.Background(), o, []Instance{a.inst}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Equal(t, 1, rep.Results[0].Attempts)
	assert.Contains(t, rep.Results[0].Error, "no answer within 100ms")
}

func TestRunPartialFailureReportsEveryInstance(t *testing.T) {
	ok1 := startInstance(t, "127.0.0.1", nil)
	bad := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) })
	ok2 := startInstance(t, "127.0.0.1", nil)
	o := fastOpts()
	o.Token = "t"
	rep, err := Run(context.Background(), o, []Instance{ok1.inst, bad.inst, ok2.inst}, mustURLs(t, "http://example.com/1", "http://example.com/2"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Len(t, rep.Results, 6)
	assert.Len(t, rep.Failed(), 2)
	assert.Equal(t, 2, rep.InstancesOK())
	for _, r := range rep.Results {
		assert.Equal(t, r.Instance != bad.inst.String(), r.OK, r.Instance)
	}
	assert.Contains(t, rep.Summary(), "FAILED: purged 2 URLs on 2/3 instances")
}

func TestRunDoesNotFollowRedirects(t *testing.T) {
	target := startInstance(t, "127.0.0.1", nil)
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+target.inst.String()+"/elsewhere", http.StatusMovedPermanently)
	})
	rep, err := Run(context.Background(), fastOpts(), []Instance{a.inst}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Equal(t, 301, rep.Results[0].Status)
	assert.Contains(t, rep.Results[0].Error, "not followed")
	assert.Empty(t, target.requests())
}

func TestRunTokenNeverPrinted(t *testing.T) {
	const token = "TOKEN-abc123-do-not-print"
	echo := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "I got "+r.Header.Get("Purge-Token"), http.StatusInternalServerError)
	})
	reject := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	o := fastOpts()
	o.Token = token
	rep, err := Run(context.Background(), o, []Instance{echo.inst, reject.inst}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	assert.Equal(t, token, echo.requests()[0].Token, "the token is sent")
	for _, f := range []Format{FormatText, FormatJSON, FormatMarkdown} {
		var buf bytes.Buffer
		require.NoError(t, rep.Write(&buf, f))
		assert.NotContains(t, buf.String(), token, f)
		assert.NotContains(t, buf.String(), "abc123", f)
	}
	assert.Contains(t, rep.Results[0].Error, "I got [token]")
}

func TestRunHTTPSUsesURLHostForSNIAndVerification(t *testing.T) {
	var sni atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(h.ServerName)
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().(*net.TCPAddr)
	inst := Instance{addr.IP.String(), addr.Port}
	o := fastOpts()
	o.Scheme = "https"
	o.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	o.Retries = -1

	// httptest's certificate is valid for example.com.
	rep, err := Run(context.Background(), o, []Instance{inst}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	assert.True(t, rep.OK(), rep.Summary())
	assert.Equal(t, "example.com", sni.Load())

	rep, err = Run(context.Background(), o, []Instance{inst}, mustURLs(t, "http://not-in-cert.test/x"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Contains(t, rep.Results[0].Error, "certificate")

	o.Insecure = true
	rep, err = Run(context.Background(), o, []Instance{inst}, mustURLs(t, "http://not-in-cert.test/x"))
	require.NoError(t, err)
	assert.True(t, rep.OK(), rep.Summary())
}

func TestRunReusesConnectionsWithinLimits(t *testing.T) {
	var insts []*instance
	var list []Instance
	for i := 0; i < 3; i++ {
		in := startInstance(t, "127.0.0.1", nil)
		insts = append(insts, in)
		list = append(list, in.inst)
	}
	var raw []string
	for i := 0; i < 200; i++ {
		raw = append(raw, fmt.Sprintf("http://example.com/p/%d", i))
	}
	o := fastOpts()
	o.Concurrency, o.PerInstance = 6, 4
	rep, err := Run(context.Background(), o, list, mustURLs(t, raw...))
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())
	assert.Len(t, rep.Results, 600)
	var total int64
	for _, in := range insts {
		assert.Len(t, in.requests(), 200)
		total += in.conns.Load()
		assert.LessOrEqual(t, in.conns.Load(), int64(2), "concurrency 6 over 3 instances gives 2 connections each")
	}
	assert.LessOrEqual(t, total, int64(6))
	// Each URL reached each instance exactly once.
	for _, in := range insts {
		got := map[string]int{}
		for _, r := range in.requests() {
			got[r.RequestURI]++
		}
		assert.Len(t, got, 200)
	}
}

func TestRunMoreInstancesThanConcurrency(t *testing.T) {
	var list []Instance
	var insts []*instance
	for i := 0; i < 5; i++ {
		in := startInstance(t, "127.0.0.1", nil)
		insts = append(insts, in)
		list = append(list, in.inst)
	}
	o := fastOpts()
	o.Concurrency = 2
	rep, err := Run(context.Background(), o, list, mustURLs(t, "http://example.com/a", "http://example.com/b"))
	require.NoError(t, err)
	require.True(t, rep.OK())
	for _, in := range insts {
		assert.Len(t, in.requests(), 2)
	}
}

func TestRunContextCancelledReportsFailures(t *testing.T) {
	a := silentInstance(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, fastOpts(), []Instance{a.inst}, mustURLs(t, "http://example.com/x"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Contains(t, rep.Results[0].Error, "stopped")
}

func TestRunBadOptions(t *testing.T) {
	in := []Instance{{"127.0.0.1", 1}}
	u := mustURLs(t, "http://example.com/")
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Method: "PUR GE"}, "method"},
		{Options{Scheme: "ftp"}, "scheme"},
		{Options{TokenHeader: "bad header"}, "token header"},
		{Options{Token: "a\nb"}, "line break"},
		{Options{Concurrency: -1}, "negative"},
	} {
		_, err := Run(context.Background(), tc.o, in, u)
		assert.ErrorContains(t, err, tc.want)
	}
	_, err := Run(context.Background(), Options{}, nil, u)
	assert.ErrorContains(t, err, "no instances")
	_, err = Run(context.Background(), Options{}, in, nil)
	assert.ErrorContains(t, err, "no URLs")
}

func TestReportFormats(t *testing.T) {
	a := startInstance(t, "127.0.0.1", nil)
	b := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	rep, err := Run(context.Background(), fastOpts(), []Instance{a.inst, b.inst}, mustURLs(t, "http://example.com/x|y"))
	require.NoError(t, err)

	var js bytes.Buffer
	require.NoError(t, rep.Write(&js, FormatJSON))
	var decoded struct {
		OK      bool   `json:"ok"`
		Summary string `json:"summary"`
		Method  string `json:"method"`
		Results []struct {
			URL        string  `json:"url"`
			Instance   string  `json:"instance"`
			Status     int     `json:"status"`
			OK         bool    `json:"ok"`
			Attempts   int     `json:"attempts"`
			DurationMS float64 `json:"duration_ms"`
			Error      string  `json:"error"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal(js.Bytes(), &decoded))
	assert.False(t, decoded.OK)
	assert.Equal(t, "PURGE", decoded.Method)
	require.Len(t, decoded.Results, 2)
	assert.Equal(t, 200, decoded.Results[0].Status)
	assert.Equal(t, 404, decoded.Results[1].Status)
	assert.Positive(t, decoded.Results[0].DurationMS)
	assert.Contains(t, decoded.Results[1].Error, "404 Not Found")

	var md bytes.Buffer
	require.NoError(t, rep.Write(&md, FormatMarkdown))
	assert.Contains(t, md.String(), "| URL | Instance | Status | Attempts | Time | Result |")
	assert.Contains(t, md.String(), `http://example.com/x\|y`)

	var txt bytes.Buffer
	require.NoError(t, rep.Write(&txt, FormatText))
	lines := strings.Split(strings.TrimSpace(txt.String()), "\n")
	require.Len(t, lines, 4)
	assert.True(t, strings.HasPrefix(lines[0], "URL"))
	assert.Equal(t, strings.Index(lines[0], "INSTANCE"), strings.Index(lines[1], a.inst.String()), "columns are aligned")
	assert.True(t, strings.HasPrefix(lines[3], "FAILED: purged 1 URL on 1/2 instances"))
}

// A server that closes each connection after one response without saying so:
// the next request on the kept-alive connection fails, and is sent again on a
// new connection without counting as a failed attempt.
func TestRunResendsOnKeptAliveConnectionClosedByServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	addr := l.Addr().(*net.TCPAddr)
	o := fastOpts()
	o.Retries = -1
	rep, err := Run(context.Background(), o, []Instance{{"127.0.0.1", addr.Port}}, mustURLs(t, "http://e.com/1", "http://e.com/2", "http://e.com/3"))
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())
	for _, r := range rep.Results {
		assert.Equal(t, 1, r.Attempts)
	}
	assert.Equal(t, int64(3), accepted.Load())
}
