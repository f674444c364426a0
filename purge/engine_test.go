package purge

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunSendsPurgeWithHostPathQueryAndToken(t *testing.T) {
	a := startInstance(t, "127.0.0.1", nil)
	b := startInstance(t, "::1", nil) // IPv6 must be bracketed
	j := job([]string{"https://changelog.com/a%20b/podcast?x=1&y=2"}, a.addr, b.addr)
	j.Token = "s3cret-token"
	j.Headers = []string{"xkey: post-1"}
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	for _, in := range []*instance{a, b} {
		reqs := in.requests()
		require.Len(t, reqs, 1)
		r := reqs[0]
		assert.Equal(t, "PURGE", r.Method)
		assert.Equal(t, "changelog.com", r.Host)
		assert.Equal(t, "/a%20b/podcast?x=1&y=2", r.RequestURI)
		assert.Equal(t, "cdnpurge/"+Version(), r.UA)
		assert.Equal(t, "s3cret-token", r.Token)
		assert.Equal(t, "post-1", r.Header.Get("Xkey"))
	}
	assert.Equal(t, b.addr, out.Purge.Result(1).Instance.String())
	assert.True(t, strings.HasPrefix(b.addr, "[::1]:"))
	assert.Equal(t, "purged 1 URL on 2/2 instances", strings.Split(out.Purge.Summary(), " in ")[0])
}

func TestRunSendsCanonicalURL(t *testing.T) {
	a := startInstance(t, "127.0.0.1", nil)
	out := run(t, job([]string{"https://CDN.example:443/episodes/./x/../1?q=a b#frag"}, a.addr))
	require.True(t, out.OK())
	r := a.requests()[0]
	assert.Equal(t, "cdn.example", r.Host)
	assert.Equal(t, "/episodes/1?q=a%20b", r.RequestURI)
	assert.Equal(t, "https://cdn.example/episodes/1?q=a%20b", out.Purge.Result(0).URL.String(), "the report shows the URL as sent")

	j := job([]string{"https://CDN.example:443/episodes/./1"}, a.addr)
	j.RawURLs = true
	out = run(t, j)
	require.True(t, out.OK())
	r = a.requests()[1]
	assert.Equal(t, "CDN.example:443", r.Host)
	assert.Equal(t, "/episodes/./1", r.RequestURI)
}

func TestRunNoTokenHeaderWithoutToken(t *testing.T) {
	a := startInstance(t, "127.0.0.1", nil)
	j := job([]string{"http://example.com:8080/"}, a.addr)
	j.Method, j.TokenHeader = "BAN", "X-Other"
	require.True(t, run(t, j).OK())
	r := a.requests()[0]
	assert.Equal(t, "BAN", r.Method)
	assert.Equal(t, "example.com:8080", r.Host)
	assert.NotContains(t, r.Header, "Purge-Token")
	assert.NotContains(t, r.Header, "X-Other")
}

func TestRunCustomTokenHeader(t *testing.T) {
	a := startInstance(t, "127.0.0.1", nil)
	j := job([]string{"http://example.com/"}, a.addr)
	j.Token, j.TokenHeader = "tok", "x-purge-key"
	run(t, j)
	assert.Equal(t, "tok", a.requests()[0].Header.Get("X-Purge-Key"))
	assert.Empty(t, a.requests()[0].Token)
}

func TestRunRetries503ThenSucceeds(t *testing.T) {
	var n atomic.Int64
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	out := run(t, job([]string{"http://example.com/x"}, a.addr))
	require.True(t, out.OK(), out.Purge.Summary())
	res := out.Purge.Result(0)
	assert.Equal(t, 2, res.Attempts)
	assert.Equal(t, 200, res.Status)
	assert.NoError(t, res.Err)
}

func TestRunGivesUpAfterAttempts(t *testing.T) {
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "backend sick", http.StatusBadGateway)
	})
	j := job([]string{"http://example.com/x"}, a.addr)
	j.Attempts = 4
	out := run(t, j)
	assert.False(t, out.OK())
	res := out.Purge.Result(0)
	assert.Equal(t, 4, res.Attempts)
	assert.Len(t, a.requests(), 4)
	assert.Contains(t, errText(res), `502 Bad Gateway: "backend sick"`)
	assert.Equal(t, 502, instErr(t, res).Status)
}

func TestRunOneAttemptMeansNoRetry(t *testing.T) {
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	j := job([]string{"http://example.com/x"}, a.addr)
	j.Attempts = 1
	out := run(t, j)
	assert.Equal(t, 1, out.Purge.Result(0).Attempts)
	assert.Len(t, a.requests(), 1)
}

func TestRunStatusesThatSayTheSameEveryTimeAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		token  string
		want   []string
		cause  error
	}{
		{401, "bad token", "wrong", []string{"401 Unauthorized", "bad token", "refused the purge token"}, ErrTokenRejected},
		{401, "", "", []string{"401 Unauthorized", "wants a purge token and none was sent"}, ErrNoToken},
		{403, "Cache-Tags or X-Url header missing.", "", []string{"403 Forbidden", "Cache-Tags or X-Url header missing."}, ErrRefused},
		{405, "Not allowed.", "t", []string{"405 Method Not Allowed", "Not allowed.", "refused the PURGE"}, ErrRefused},
		{501, "", "t", []string{"501 Not Implemented", "refused the PURGE"}, ErrRefused},
		{404, "", "t", []string{"404 Not Found", "found nothing to purge there, or does not route PURGE"}, ErrNotFound},
		{505, "", "t", []string{"505"}, nil},
	} {
		a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
			if tc.body != "" {
				http.Error(w, tc.body, tc.status)
				return
			}
			w.WriteHeader(tc.status)
		})
		j := job([]string{"http://example.com/x"}, a.addr)
		j.Token = tc.token
		out := run(t, j)
		res := out.Purge.Result(0)
		assert.False(t, res.OK, tc.status)
		assert.Equal(t, 1, res.Attempts, tc.status)
		assert.Len(t, a.requests(), 1, tc.status)
		for _, w := range tc.want {
			assert.Contains(t, errText(res), w, tc.status)
		}
		if tc.cause != nil {
			assert.ErrorIs(t, res.Err, tc.cause, tc.status)
		}
		if tc.status == 403 {
			assert.NotContains(t, errText(res), "no token", "a 403 keeps the instance's own reason")
		}
	}
}

func TestRunAcceptsExtraOKStatus(t *testing.T) {
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	j := job([]string{"http://example.com/x"}, a.addr)
	j.OKStatus = []int{404}
	out := run(t, j)
	assert.True(t, out.OK())
	assert.Equal(t, 404, out.Purge.Result(0).Status)
}

func TestRunConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	j := job([]string{"http://example.com/x"}, addr)
	j.Attempts = 2
	out := run(t, j)
	res := out.Purge.Result(0)
	assert.False(t, res.OK)
	assert.Equal(t, 0, res.Attempts, "tried twice, never written: nothing was sent")
	assert.Contains(t, errText(res), "not sent: connection refused")
	assert.Equal(t, 0, res.Status)
	assert.Equal(t, addr, instErr(t, res).Instance.String())
}

func TestRunInstanceThatNeverAnswersTimesOut(t *testing.T) {
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
	j := job([]string{"http://example.com/x"}, s.addr)
	j.Timeout, j.Attempts = 100*time.Millisecond, 1
	out := run(t, j)
	res := out.Purge.Result(0)
	assert.False(t, res.OK)
	assert.Equal(t, 1, res.Attempts)
	assert.Contains(t, errText(res), "no answer within 100ms")
}

// A slow answer is bounded as a whole: headers trickled in byte by byte do
// not extend the attempt.
func TestRunTimeoutCoversTheWholeAnswer(t *testing.T) {
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		if _, _, err := s.readRequest(br); err != nil {
			return
		}
		for _, b := range []byte("HTTP/1.1 200 OK\r\nX-Slow: " + strings.Repeat("a", 1000)) {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond) // the trickle, not a wait for readiness
		}
	})
	j := job([]string{"http://example.com/x"}, s.addr)
	j.Timeout, j.Attempts = 300*time.Millisecond, 1
	out := run(t, j)
	assert.Contains(t, errText(out.Purge.Result(0)), "no answer within 300ms")
}

func TestRunHugeHeaderIsRefusedWithBoundedMemory(t *testing.T) {
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		if _, _, err := s.readRequest(br); err != nil {
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nX-Huge: "))
		chunk := []byte(strings.Repeat("a", 64<<10))
		for range 16 << 10 / 64 { // 16 MiB, unless the client hangs up first
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	j := job([]string{"http://example.com/x"}, s.addr)
	j.Attempts = 1
	out := run(t, j)
	runtime.ReadMemStats(&after)
	assert.Contains(t, errText(out.Purge.Result(0)), "headers larger than 64 KiB")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4<<20), "a huge header must not be held in memory")
}

// An interim 103 Early Hints before the real answer must not shift the
// pairing of answers and requests on a kept-alive connection.
func TestRunSkipsInterimAnswers(t *testing.T) {
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		for {
			line, _, err := s.readRequest(br)
			if err != nil {
				return
			}
			status := "200 OK"
			if strings.HasSuffix(line, "/missing") {
				status = "404 Not Found"
			}
			_, _ = fmt.Fprintf(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 %s\r\nContent-Length: 2\r\n\r\nok", status)
		}
	})
	for _, depth := range []int{1, 8} {
		j := job([]string{"http://e.com/a", "http://e.com/missing", "http://e.com/b", "http://e.com/c"}, s.addr)
		j.Pipeline, j.PerInstance = depth, 1
		out := run(t, j)
		rs := results(out.Purge)
		assert.Equal(t, []int{200, 404, 200, 200}, []int{rs[0].Status, rs[1].Status, rs[2].Status, rs[3].Status}, "depth %d", depth)
		assert.Equal(t, []bool{true, false, true, true}, []bool{rs[0].OK, rs[1].OK, rs[2].OK, rs[3].OK}, "depth %d", depth)
	}
	assert.Equal(t, int64(2), s.conns.Load(), "interim answers keep the connection (one per run)")
}

func TestRun101IsAnError(t *testing.T) {
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		if _, _, err := s.readRequest(br); err == nil {
			_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"))
		}
	})
	j := job([]string{"http://e.com/a"}, s.addr)
	j.Attempts = 1
	out := run(t, j)
	assert.Contains(t, errText(out.Purge.Result(0)), "101 Switching Protocols")
}

// An answer whose body is longer than its Content-Length leaves bytes that
// belong to no request: they must fail the next request, never pass for its
// answer. The server reads what the client sent in one go, then answers it
// all in one write, as a pipelining server does: /a's answer carries a
// whole fake "200" after its 2 declared bytes.
func TestRunNeverPairsAnAnswerWithTheWrongRequest(t *testing.T) {
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		for {
			var out strings.Builder
			for {
				line, _, err := s.readRequest(br)
				if err != nil {
					return
				}
				if strings.HasSuffix(line, "/a") {
					out.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				} else {
					out.WriteString("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
				}
				if br.Buffered() == 0 {
					break
				}
			}
			_, _ = c.Write([]byte(out.String()))
		}
	})
	for _, depth := range []int{1, 4} {
		j := job([]string{"http://e.com/a", "http://e.com/b"}, s.addr)
		j.Pipeline, j.PerInstance, j.Attempts = depth, 1, 1
		out := run(t, j)
		b := out.Purge.Result(1)
		assert.False(t, b.OK, "depth %d: /b was answered 500, or not at all; never 200", depth)
		assert.Equal(t, 500, b.Status, "depth %d", depth)
	}
}

// A connection to a kept-alive instance that closed it meanwhile: PURGE is
// idempotent, so it is sent again on a new connection, once, without
// counting a failed attempt.
func TestRunResendsIdempotentOnKeptAliveConnectionClosedByServer(t *testing.T) {
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		if _, _, err := s.readRequest(br); err == nil {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		}
		// then close without saying so
	})
	j := job([]string{"http://e.com/1", "http://e.com/2", "http://e.com/3"}, s.addr)
	j.Attempts, j.PerInstance = 1, 1
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	for _, r := range results(out.Purge) {
		assert.Equal(t, 1, r.Attempts)
	}
	assert.Equal(t, int64(3), s.conns.Load())
	assert.Equal(t, int64(3), s.reqs.Load())
}

// A method that is not idempotent is never sent again once written.
func TestRunNeverResendsAWrittenRequestThatIsNotIdempotent(t *testing.T) {
	var n atomic.Int64
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		for {
			if _, _, err := s.readRequest(br); err != nil {
				return
			}
			if n.Add(1) == 2 {
				return // the second request: read, then the connection dies
			}
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		}
	})
	j := job([]string{"http://e.com/1", "http://e.com/2"}, s.addr)
	j.Method, j.PerInstance, j.Attempts = "REFRESH", 1, 3
	out := run(t, j)
	rs := results(out.Purge)
	assert.True(t, rs[0].OK)
	assert.False(t, rs[1].OK)
	assert.Equal(t, 1, rs[1].Attempts)
	assert.Equal(t, int64(2), s.reqs.Load(), "the written request was not sent again")
}

// An instance that takes connections and never answers is given up after a
// few attempts in a row, and its remaining URLs are not sent, while the
// healthy instance gets them all.
func TestRunGivesUpAnUnreachableInstance(t *testing.T) {
	silent := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
	healthy := startInstance(t, "127.0.0.1", nil)
	var urls []string
	for i := range 1000 {
		urls = append(urls, fmt.Sprintf("http://e.com/%d", i))
	}
	j := job(urls, silent.addr, healthy.addr)
	j.Timeout = 100 * time.Millisecond
	out := run(t, j)
	rep := out.Purge
	si := slices.IndexFunc(rep.Instances, func(in Instance) bool { return in.String() == silent.addr })
	stats := rep.Stats()
	assert.Equal(t, 1000, stats[1-si].OK, "the healthy instance got every URL")
	assert.Equal(t, 0, stats[si].OK)
	assert.Greater(t, stats[si].NotSent, 900, "the silent instance was given up early")
	assert.LessOrEqual(t, silent.conns.Load(), int64(DefaultPerInstance*DefaultAttempts))
	last := rep.Result(rep.Index(999, si))
	assert.Equal(t, 0, last.Attempts)
	assert.ErrorIs(t, last.Err, ErrNotAnswering)
	assert.Contains(t, errText(last), "not sent")
	for k := range 1000 {
		if r := rep.Result(rep.Index(k, si)); r.Attempts > 0 {
			assert.Contains(t, errText(r), "no answer within 100ms", "a request written is never 'not sent'")
		}
	}
}

// A run stopped before a request was sent reports it as not sent, with 0
// attempts; requests written and unanswered count 1.
func TestRunStoppedReportsNotSent(t *testing.T) {
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
	var urls []string
	for i := range 50 {
		urls = append(urls, fmt.Sprintf("http://e.com/%d", i))
	}
	j := job(urls, s.addr)
	j.Deadline, j.Timeout, j.PerInstance, j.Pipeline = 100*time.Millisecond, 10*time.Second, 1, 4
	out := run(t, j)
	rs := results(out.Purge)
	assert.Equal(t, 1, rs[0].Attempts)
	assert.ErrorIs(t, rs[0].Err, ErrStopped)
	assert.Equal(t, 0, rs[49].Attempts)
	assert.Contains(t, errText(rs[49]), "not sent")
	assert.ErrorIs(t, rs[49].Err, ErrStopped)
}

func TestRunPartialFailureReportsEveryInstance(t *testing.T) {
	ok1 := startInstance(t, "127.0.0.1", nil)
	bad := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) })
	ok2 := startInstance(t, "127.0.0.1", nil)
	j := job([]string{"http://example.com/1", "http://example.com/2"}, ok1.addr, bad.addr, ok2.addr)
	j.Token = "t"
	out := run(t, j)
	rep := out.Purge
	assert.False(t, out.OK())
	assert.Equal(t, 6, rep.Len())
	assert.Equal(t, 2, rep.Failed())
	assert.Equal(t, 2, rep.InstancesOK())
	for _, r := range results(rep) {
		assert.Equal(t, r.Instance.String() != bad.addr, r.OK, r.Instance)
	}
	assert.Contains(t, rep.Summary(), "FAILED: purged 4 of 6 (2 URLs x 3 instances)")
	assert.Contains(t, rep.Summary(), "2/3 instances complete; 2 failed")
	assert.EqualError(t, out.Err(), "purge: 2 of 6 results failed on 1 of 3 instances")
}

func TestRunDoesNotFollowRedirects(t *testing.T) {
	target := startInstance(t, "127.0.0.1", nil)
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+target.addr+"/elsewhere", http.StatusMovedPermanently)
	})
	out := run(t, job([]string{"http://example.com/x"}, a.addr))
	res := out.Purge.Result(0)
	assert.False(t, res.OK)
	assert.Equal(t, 301, res.Status)
	assert.Contains(t, errText(res), "not followed")
	assert.Empty(t, target.requests())
}

// A VCL that does not handle PURGE answers it as an ordinary cache hit.
func TestRunPurgeServedFromCacheFails(t *testing.T) {
	a := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Varnish", "32770 32768") })
	out := run(t, job([]string{"http://example.com/x"}, a.addr))
	res := out.Purge.Result(0)
	assert.False(t, res.OK)
	assert.ErrorIs(t, res.Err, ErrServedFromCache)
	assert.Contains(t, errText(res), "its VCL does not handle PURGE")

	b := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Varnish", "32771") })
	assert.True(t, run(t, job([]string{"http://example.com/x"}, b.addr)).OK(), "one id, no Age: a synthetic answer from the purge itself")

	c := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Varnish", "32772")
		w.Header().Set("Age", "0")
	})
	res = run(t, job([]string{"http://example.com/x"}, c.addr)).Purge.Result(0)
	assert.ErrorIs(t, res.Err, ErrPurgeNotHandled, "one id and an Age: the page itself, a miss")
}

func TestRunTokenNeverShown(t *testing.T) {
	for _, token := range []string{"S3cr3t-T0ken-01234567", "1"} {
		// An instance that echoes the request in its body, padded so that a
		// cut through the body would fall inside the token.
		echo := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				var b strings.Builder
				_ = req.Header.Write(&b)
				body := strings.Repeat(" ", 290) + "PURGE " + req.RequestURI + " HTTP/1.1\r\n" + b.String() + "\r\nechoed " + req.Header.Get("Purge-Token")
				_, _ = fmt.Fprintf(c, "HTTP/1.1 500 Token %s\r\nContent-Length: %d\r\n\r\n%s", req.Header.Get("Purge-Token"), len(body), body)
			}
		})
		j := job([]string{"http://example.com/x"}, echo.addr)
		j.Token, j.Attempts = token, 1
		out := run(t, j)
		msg := errText(out.Purge.Result(0))
		assert.Contains(t, msg, "500", token)
		if token != "1" {
			assert.NotContains(t, msg, token)
			for i := 4; i < len(token); i++ {
				assert.NotContains(t, msg, token[:i], "no part of the token")
			}
		}
		assert.NotContains(t, msg, "Purge-Token", "echoed request headers are dropped")
		assert.NotContains(t, msg, "[token]")
		assert.Contains(t, msg, "withheld")
	}
}

func TestRunReasonAndBodyAreInert(t *testing.T) {
	a := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		if _, _, err := s.readRequest(br); err == nil {
			body := "\x1b]0;owned\x07\x1b[31mred\x1b[0m"
			_, _ = fmt.Fprintf(c, "HTTP/1.1 500 \x1b[2Jclear\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
	j := job([]string{"http://example.com/x"}, a.addr)
	j.Attempts = 1
	msg := errText(run(t, j).Purge.Result(0))
	assert.NotContains(t, msg, "\x1b")
	assert.NotContains(t, msg, "\x07")
	assert.Contains(t, msg, "red")
}

func TestRunHTTPSUsesURLHostForTLS(t *testing.T) {
	var sni atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(h.ServerName)
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	j := job([]string{"http://example.com/x"}, srv.Listener.Addr().String())
	j.Scheme, j.Attempts = "HTTPS", 1
	j.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	// httptest's certificate is valid for example.com.
	out := run(t, j)
	assert.True(t, out.OK(), out.Purge.Summary())
	assert.Equal(t, "example.com", sni.Load())

	j.URLs = []string{"http://not-in-cert.test/x"}
	assert.Contains(t, errText(run(t, j).Purge.Result(0)), "certificate")

	j.Insecure = true
	assert.True(t, run(t, j).OK())
}

func TestRunKeepsConnectionsWithinLimits(t *testing.T) {
	var ins []*instance
	for range 3 {
		ins = append(ins, startInstance(t, "127.0.0.1", nil))
	}
	var urls []string
	for i := range 200 {
		urls = append(urls, fmt.Sprintf("http://example.com/p/%d", i))
	}
	j := job(urls, addrs(ins...)...)
	j.Concurrency, j.PerInstance = 6, 4
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	assert.Equal(t, 600, out.Purge.Len())
	var total int64
	for _, in := range ins {
		total += in.conns.Load()
		assert.LessOrEqual(t, in.conns.Load(), int64(2), "concurrency 6 over 3 instances gives 2 connections each")
		got := map[string]int{}
		for _, r := range in.requests() {
			got[r.RequestURI]++
		}
		assert.Len(t, got, 200, "each URL reached each instance")
		for u, n := range got {
			assert.Equal(t, 1, n, u)
		}
	}
	assert.LessOrEqual(t, total, int64(6))
}

func TestRunMoreInstancesThanConcurrency(t *testing.T) {
	var ins []*instance
	for range 5 {
		ins = append(ins, startInstance(t, "127.0.0.1", nil))
	}
	j := job([]string{"http://example.com/a", "http://example.com/b"}, addrs(ins...)...)
	j.Concurrency = 2
	require.True(t, run(t, j).OK())
	for _, in := range ins {
		assert.Len(t, in.requests(), 2)
	}
}

// Pipelining: an instance that closes after k answers (keep-alive limit),
// one that stalls in the middle of a batch, and one that says
// Connection: close: every request is answered once and paired exactly.
func TestRunPipelinedBatches(t *testing.T) {
	const k = 3
	closes := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		for i := 0; i < k; i++ {
			line, _, err := s.readRequest(br)
			if err != nil {
				return
			}
			_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(line), line)
		}
	})
	says := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			if _, _, err := s.readRequest(br); err != nil {
				return
			}
			if i == 1 {
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\nHTTP/1.1 500 Not Me\r\nContent-Length: 0\r\n\r\n"))
				return
			}
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
		}
	})
	var stalled atomic.Bool
	stalls := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			if _, _, err := s.readRequest(br); err != nil {
				return
			}
			if i == 2 && stalled.CompareAndSwap(false, true) {
				_, _ = io.Copy(io.Discard, br) // never answer this one on this connection
				return
			}
			_, _ = c.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
		}
	})
	var urls []string
	for i := range 40 {
		urls = append(urls, fmt.Sprintf("http://e.com/%d", i))
	}
	j := job(urls, closes.addr, says.addr, stalls.addr)
	j.Pipeline, j.PerInstance, j.Timeout = 8, 1, 200*time.Millisecond
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	for _, r := range results(out.Purge) {
		// A request written past a close the instance did not announce, or
		// past a stall, is written again: at most once more.
		assert.LessOrEqual(t, r.Attempts, 2, "%s %s", r.Instance, r.URL)
	}
	assert.Equal(t, int64(40), closes.reqs.Load(), "each request answered once, none repeated")
	assert.GreaterOrEqual(t, closes.conns.Load(), int64(40/k))
}

func TestRunBadJobs(t *testing.T) {
	for _, tc := range []struct {
		j    Job
		want string
	}{
		{Job{URLs: []string{"http://e.com/"}}, "no instances"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, DNSName: "x.internal"}, "not more than one"},
		{Job{Instances: []string{"1.2.3.4"}}, "no URL given"},
		{Job{URLs: []string{"/x"}, Instances: []string{"1.2.3.4"}}, "not absolute"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Method: "PUR GE"}, "method"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Scheme: "ftp"}, "scheme"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Insecure: true}, "only applies to https"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, TokenHeader: "bad header"}, "token header"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, TokenHeader: "Host"}, "sets that header itself"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Token: "a\nb"}, "control characters"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Token: " tok "}, "white space"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Token: strings.Repeat("x", MaxTokenBytes+1)}, "longer than 64 KiB"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Headers: []string{"X-A: b\x1b[31m"}}, "control characters"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Headers: []string{"Host: other"}}, "sets it itself"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Concurrency: -1}, "negative"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Wait: time.Second, Interval: 10 * time.Millisecond}, "at least 100ms"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Record: "mx"}, `record type "mx": use aaaa, a or srv`},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"0.0.0.0"}}, "unspecified"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"255.255.255.255:80"}}, "broadcast"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"[ff02::1]:80"}}, "multicast"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Method: "BAN", Verify: []Expect{ExpectMiss}}, "give the URLs to verify"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Tags: []string{"a"}, Verify: []Expect{ExpectMiss}}, "give the URLs to verify"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, Ban: "^/a", Soft: true}, "cannot be soft"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, VerifyOnly: true, Verify: []Expect{ExpectPurged}}, "needs a purge"},
		{Job{URLs: []string{"http://e.com/"}, Instances: []string{"1.2.3.4"}, OKStatus: []int{101}}, "ok status 101"},
	} {
		_, err := tc.j.Run(context.Background())
		var je *JobError
		require.True(t, errors.As(err, &je), "%v: want *JobError, got %v", tc.want, err)
		assert.ErrorContains(t, err, tc.want)
	}
}
