package purge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Version is the library's version, sent in the default User-Agent.
const Version = "0.1.0"

// Defaults for Options fields left at their zero value.
const (
	DefaultMethod      = "PURGE"
	DefaultTokenHeader = "Purge-Token"
	DefaultConcurrency = 1024
	DefaultPerInstance = 8
	DefaultTimeout     = 5 * time.Second
	DefaultRetries     = 2
	DefaultBackoff     = 100 * time.Millisecond
	maxBackoff         = 5 * time.Second
	maxDetail          = 300     // bytes of an error body kept in a Result
	maxDrain           = 1 << 16 // bytes read to keep a connection reusable
)

// Options control how requests are sent. The zero value is usable: PURGE
// over http, no token, defaults as the Default* constants say.
type Options struct {
	// Method is the request method: PURGE (default), BAN or any token.
	Method string
	// Scheme is how instances are reached: "http" (default) or "https".
	// With https, SNI and certificate checks use the URL's host.
	Scheme string
	// Token, when not empty, is sent in the TokenHeader header. It never
	// appears in a Result, a Report or an error.
	Token string
	// TokenHeader names the token header; empty means Purge-Token.
	TokenHeader string
	// Header holds extra request headers (an xkey header, say).
	Header http.Header
	// Concurrency bounds the requests in flight, and so the connections
	// open, across all instances. Zero means DefaultConcurrency.
	Concurrency int
	// PerInstance bounds the requests in flight to one instance when many
	// URLs are purged. Zero means DefaultPerInstance.
	PerInstance int
	// Timeout bounds each attempt (connect, send, headers). Zero means
	// DefaultTimeout. The context bounds the whole run.
	Timeout time.Duration
	// Retries is how many more attempts follow a connection error, a
	// timeout, a 429 or a 5xx. Negative means none; zero means DefaultRetries.
	Retries int
	// Backoff is the first delay between attempts; it doubles each time,
	// with jitter. Zero means DefaultBackoff.
	Backoff time.Duration
	// Insecure skips TLS certificate checks.
	Insecure bool
	// RootCAs, when set, replaces the system's roots for https.
	RootCAs *x509.CertPool
	// UserAgent defaults to cdnpurge/<Version>.
	UserAgent string
}

func (o Options) withDefaults() (Options, error) {
	if o.Method == "" {
		o.Method = DefaultMethod
	}
	if !validToken(o.Method) {
		return o, fmt.Errorf("method %q: not a valid HTTP method token", o.Method)
	}
	switch o.Scheme {
	case "":
		o.Scheme = "http"
	case "http", "https":
	default:
		return o, fmt.Errorf("scheme %q: use http or https", o.Scheme)
	}
	if o.TokenHeader == "" {
		o.TokenHeader = DefaultTokenHeader
	}
	if !validToken(o.TokenHeader) {
		return o, fmt.Errorf("token header %q: not a valid header name", o.TokenHeader)
	}
	if strings.ContainsAny(o.Token, "\r\n") {
		return o, errors.New("token: contains a line break; check the token file or PURGE_TOKEN")
	}
	for k := range o.Header {
		if !validToken(k) {
			return o, fmt.Errorf("header %q: not a valid header name", k)
		}
	}
	if o.Concurrency < 0 || o.PerInstance < 0 || o.Timeout < 0 || o.Backoff < 0 {
		return o, errors.New("concurrency, per-instance, timeout and backoff must not be negative")
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.PerInstance == 0 {
		o.PerInstance = DefaultPerInstance
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff == 0 {
		o.Backoff = DefaultBackoff
	}
	if o.UserAgent == "" {
		o.UserAgent = "cdnpurge/" + Version
	}
	return o, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c > 127 || !strings.ContainsRune("!#$%&'*+-.^_`|~", c) && !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// ParseHeader parses "Name: value" as given to --header.
func ParseHeader(s string) (name, value string, err error) {
	k, v, ok := strings.Cut(s, ":")
	k = strings.TrimSpace(k)
	if !ok || !validToken(k) {
		return "", "", fmt.Errorf("header %q: write it as 'Name: value'", s)
	}
	v = strings.TrimSpace(v)
	if strings.ContainsAny(v, "\r\n") {
		return "", "", fmt.Errorf("header %q: value contains a line break", k)
	}
	return textproto.CanonicalMIMEHeaderKey(k), v, nil
}

// exchange is one request to one instance about one URL; it fills res from
// the response. It returns whether the attempt may be retried.
type exchange func(ctx context.Context, rt *instanceConn, u *url.URL, in Instance, res *attempt) (retry bool)

type attempt struct {
	status int
	header http.Header
	detail string
	err    error
}

// engine runs one exchange per (URL, instance) pair across a bounded set of
// workers. Each worker owns one connection at a time, to one instance, so the
// connections open never exceed Options.Concurrency, and a worker keeps its
// connection alive across the URLs it sends to the same instance.
type engine struct {
	o         Options
	instances []Instance
	urls      []*url.URL
	do        exchange
	tlsConfig *tls.Config
}

type lane struct {
	inst int
	next *atomic.Int64
}

type outcome struct {
	attempts  int
	dur       time.Duration
	bytesRead int64
	last      attempt
}

func (e *engine) run(ctx context.Context) [][]outcome {
	nI, nU := len(e.instances), len(e.urls)
	out := make([][]outcome, nU)
	for i := range out {
		out[i] = make([]outcome, nI)
	}
	if nI == 0 || nU == 0 {
		return out
	}
	perInst := min(nU, e.o.PerInstance, max(1, e.o.Concurrency/nI))
	// Lanes of one instance share its URL counter; lanes go round-robin
	// over instances so that every instance gets a worker first.
	counters := make([]atomic.Int64, nI)
	lanes := make(chan lane, nI*perInst)
	for k := 0; k < perInst; k++ {
		for i := range nI {
			lanes <- lane{inst: i, next: &counters[i]}
		}
	}
	close(lanes)

	workers := min(e.o.Concurrency, len(lanes))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.worker(ctx, lanes, out)
		}()
	}
	wg.Wait()
	return out
}

func (e *engine) worker(ctx context.Context, lanes <-chan lane, out [][]outcome) {
	c := newInstanceConn(e.tlsConfig, e.o.Timeout)
	defer c.close()
	for l := range lanes {
		c.target(e.instances[l.inst].String())
		for {
			u := int(l.next.Add(1) - 1)
			if u >= len(e.urls) {
				break
			}
			out[u][l.inst] = e.attempts(ctx, c, e.urls[u], e.instances[l.inst])
		}
	}
}

func (e *engine) attempts(ctx context.Context, rt *instanceConn, u *url.URL, in Instance) outcome {
	start, read0 := time.Now(), rt.read
	var oc outcome
	for {
		oc.attempts++
		oc.last = attempt{}
		actx, cancel := context.WithTimeout(ctx, e.o.Timeout)
		retry := e.do(actx, rt, u, in, &oc.last)
		cancel()
		if oc.last.err != nil {
			oc.last.err = describeErr(ctx, oc.last.err, in, e.o.Timeout)
		}
		if !retry || oc.attempts > e.o.Retries || ctx.Err() != nil {
			break
		}
		if err := sleepCtx(ctx, e.backoff(oc.attempts, oc.last.header)); err != nil {
			break
		}
	}
	oc.dur = time.Since(start)
	oc.bytesRead = rt.read - read0
	return oc
}

func (e *engine) backoff(n int, h http.Header) time.Duration {
	d := e.o.Backoff << (n - 1)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	if s := h.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
			if ra := time.Duration(secs) * time.Second; ra > d {
				d = min(ra, maxBackoff)
			}
		}
	}
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// describeErr turns transport errors into messages that name the instance
// and say what happened, without URLs (which Go would otherwise repeat).
func describeErr(ctx context.Context, err error, in Instance, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	d, hasDeadline := ctx.Deadline()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: stopped: %w", in, ctx.Err())
	case hasDeadline && !time.Now().Before(d):
		return fmt.Errorf("%s: stopped: %w", in, context.DeadlineExceeded)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s: connection refused (is the cache running and listening on that port?)", in)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s: no answer within %s", in, timeout)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: connection closed before a response: %v", in, err)
	}
	return fmt.Errorf("%s: %w", in, err)
}

// newRequest builds the request for u; instanceConn.RoundTrip takes the
// context separately, which spares a copy of the request per attempt.
func (e *engine) newRequest(method string, u *url.URL) *http.Request {
	// Opaque carries the path exactly as written (see ParseURL).
	path, _, _ := strings.Cut(RequestTarget(u), "?")
	target := &url.URL{Scheme: e.o.Scheme, Host: u.Host, Opaque: path, RawQuery: u.RawQuery, ForceQuery: u.ForceQuery}
	if strings.HasPrefix(path, "//") { // Opaque "//..." would read as an authority
		target.Opaque, target.Path, target.RawPath = "", u.Path, u.RawPath
	}
	req := &http.Request{
		Method:     method,
		URL:        target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(e.o.Header)+2),
		Host:       u.Host,
	}
	for k, v := range e.o.Header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", e.o.UserAgent)
	return req
}

func newTLSConfig(o Options) *tls.Config {
	if o.Scheme != "https" {
		return nil
	}
	return &tls.Config{InsecureSkipVerify: o.Insecure, RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12} //nolint:gosec // --insecure is the user's explicit choice
}

// retryable says whether a status code is worth another attempt.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// readBody drains a little of a body so the connection can be reused, and
// returns its start, for the report, when keep is set.
func readBody(body io.ReadCloser, keep bool) string {
	defer body.Close()
	var buf [512]byte
	n, _ := io.ReadFull(body, buf[:])
	detail := ""
	if keep {
		detail = strings.Join(strings.Fields(strings.ToValidUTF8(string(buf[:min(n, maxDetail)]), "?")), " ")
	}
	for drained := n; n == len(buf) && drained < maxDrain; drained += n {
		n, _ = io.ReadFull(body, buf[:])
	}
	return detail
}
