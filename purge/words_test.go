package purge

// What a failed row says, held word for word: the time a connection that
// failed took, what stopped a run, each said once.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A connection that fails in its TLS handshake shows the time it took,
// not 0s, and says what did not happen (nothing was written: not "no
// answer").
func TestRunConnectFailureShowsTheTimeSpent(t *testing.T) {
	// A certificate for another host: the handshake fails at once.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	j := job([]string{"https://not-in-cert.test/x"}, srv.Listener.Addr().String())
	j.Scheme, j.Attempts = "https", 1
	res := run(t, j).Purge.Result(0)
	assert.Equal(t, 0, res.Attempts)
	assert.Contains(t, errText(res), "not sent: tls: failed to verify certificate")
	assert.Positive(t, res.Duration, "the handshake took time")

	// A listener that accepts and never speaks: the handshake waits the
	// whole timeout.
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
	j = job([]string{"https://e.com/x"}, s.addr)
	j.Scheme, j.Attempts, j.Timeout = "https", 1, 200*time.Millisecond
	res = run(t, j).Purge.Result(0)
	assert.Equal(t, 0, res.Attempts)
	assert.Equal(t, s.addr+": not sent: the TLS handshake did not finish within 200ms", errText(res))
	assert.GreaterOrEqual(t, res.Duration, 200*time.Millisecond)

	// The run's deadline cuts the handshake: the deadline is said, and
	// the time it waited shown.
	j.Timeout, j.Deadline = 5*time.Second, 300*time.Millisecond
	res = run(t, j).Purge.Result(0)
	assert.Equal(t, s.addr+": not sent: the run was stopped first: the job's deadline passed", errText(res))
	assert.ErrorIs(t, res.Err, ErrStopped)
	assert.ErrorIs(t, res.Err, ErrDeadline)
	assert.Greater(t, res.Duration, 100*time.Millisecond)
}

// What a stopped run did not send says why once: the cause (the job's
// deadline, the caller's), after "not sent: the run was stopped first".
func TestRunStoppedNotSentSaysWhyOnce(t *testing.T) {
	written := make(chan struct{}, 1)
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		if _, _, err := s.readRequest(br); err == nil {
			written <- struct{}{}
		}
		_, _ = io.Copy(io.Discard, br)
	})
	j := job([]string{"http://e.com/1", "http://e.com/2"}, s.addr)
	j.Timeout, j.PerInstance, j.Pipeline, j.Deadline = 10*time.Second, 1, 1, 200*time.Millisecond
	rs := results(run(t, j).Purge)
	<-written
	assert.Equal(t, s.addr+": stopped before an answer came: the job's deadline passed", errText(rs[0]))
	assert.Equal(t, s.addr+": not sent: the run was stopped first: the job's deadline passed", errText(rs[1]))
	for _, r := range rs {
		assert.ErrorIs(t, r.Err, ErrStopped)
		assert.ErrorIs(t, r.Err, ErrDeadline)
	}

	j.Deadline = 0
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		<-written
		cancel(errors.New("interrupted by SIGINT (Ctrl-C)"))
	}()
	out, err := j.Run(ctx)
	require.NoError(t, err)
	rs = results(out.Purge)
	assert.Equal(t, s.addr+": not sent: the run was stopped first: interrupted by SIGINT (Ctrl-C)", errText(rs[1]))
	assert.ErrorIs(t, rs[1].Err, ErrStopped)
	assert.NotErrorIs(t, rs[1].Err, ErrDeadline)
	for _, r := range rs {
		assert.False(t, doubled(errText(r)), "said twice: %s", errText(r))
	}
}

// doubled says whether s repeats a run of three words or more.
func doubled(s string) bool {
	w := strings.Fields(s)
	for n := 3; n <= len(w)/2; n++ {
		seen := map[string]bool{}
		for i := 0; i+n <= len(w); i++ {
			k := fmt.Sprint(w[i : i+n])
			if seen[k] {
				return true
			}
			seen[k] = true
		}
	}
	return false
}

// An error page fails a check in words that fit what was asked: a plain
// verify had no purge to prove.
func TestVerifyErrorPageSaysWhatItCannotShow(t *testing.T) {
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "PURGE" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	for _, verifyOnly := range []bool{true, false} {
		j := job([]string{"https://e.com/x"}, in.addr)
		j.VerifyOnly, j.Verify, j.Attempts = verifyOnly, []Expect{ExpectHit}, 1
		out := run(t, j)
		require.Len(t, out.Verify, 1)
		assert.Equal(t, in.addr+": the instance answered 503 Service Unavailable: an error page does not show what its cache holds", errText(out.Verify[0].Result(0)))
	}
}

// An instance given up says so once: "given up after 3 ... in a row",
// with the last failure's reason unless it is the same no answer.
func TestRunGivenUpSaysWhyOnce(t *testing.T) {
	urls := []string{"http://e.com/1", "http://e.com/2", "http://e.com/3", "http://e.com/4"}
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
	j := job(urls, s.addr)
	j.Timeout, j.Attempts, j.PerInstance, j.Pipeline = 100*time.Millisecond, 1, 1, 1
	rs := results(run(t, j).Purge)
	assert.Equal(t, s.addr+": not sent: instance not answering: given up after 3 requests in a row to the instance got no answer within 100ms", errText(rs[3]))
	assert.ErrorIs(t, rs[3].Err, ErrNotAnswering)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	j = job(urls, addr)
	j.Attempts, j.PerInstance, j.Pipeline = 1, 1, 1
	rs = results(run(t, j).Purge)
	assert.Equal(t, addr+": not sent: instance unreachable: given up after 3 connection failures in a row to the instance; the last: connection refused (is the cache running and listening on that port?)", errText(rs[3]))
	assert.ErrorIs(t, rs[3].Err, ErrUnreachable)
	for _, r := range rs {
		assert.False(t, doubled(errText(r)), "said twice: %s", errText(r))
	}
}
