package purge

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// instance is a real HTTP listener (net/http) that records what it receives.
type instance struct {
	srv   *httptest.Server
	addr  string // host:port, for Job.Instances
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
	return serveInstance(t, l, h)
}

func serveInstance(t *testing.T, l net.Listener, h http.HandlerFunc) *instance {
	in := &instance{addr: l.Addr().String()}
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
	return in
}

// rawServer is an instance that speaks raw bytes: handle runs once per
// connection, with a reader over it, until it returns.
type rawServer struct {
	addr  string
	conns atomic.Int64
	reqs  atomic.Int64 // requests read by readRequest
}

func startRaw(t *testing.T, handle func(s *rawServer, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(s, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// readRequest reads one request head and returns its request line.
func (s *rawServer) readRequest(br *bufio.Reader) (string, http.Header, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return "", nil, err
	}
	s.reqs.Add(1)
	return req.Method + " " + req.RequestURI, req.Header, nil
}

// job is a Job for these tests: short timeouts and backoff.
func job(urls []string, instances ...string) Job {
	return Job{URLs: urls, Instances: instances, Timeout: 2 * time.Second, Backoff: time.Millisecond}
}

func addrs(ins ...*instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.addr)
	}
	return out
}

func run(t *testing.T, j Job) *Outcome {
	t.Helper()
	out, err := j.Run(context.Background())
	require.NoError(t, err)
	return out
}

// results renders every result of a report.
func results(r *Report) []Result {
	out := make([]Result, r.Len())
	for i := range out {
		out[i] = r.Result(i)
	}
	return out
}

func errText(r Result) string {
	if r.Err == nil {
		return ""
	}
	return r.Err.Error()
}

func instErr(t *testing.T, r Result) *InstanceError {
	t.Helper()
	var ie *InstanceError
	require.True(t, errors.As(r.Err, &ie), "want *InstanceError, got %T: %v", r.Err, r.Err)
	return ie
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
