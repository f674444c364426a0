package purge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/internal/hostile"
)

// The wire against instances that misbehave on purpose. Each test holds
// the report to what the instance recorded: no URL received more often
// than its row's attempts say; "not sent" only for what never arrived; a
// written request without an answer is "no answer" with its attempts.

func urlsN(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("http://e.com/%d", i)
	}
	return out
}

// holdToRecord checks every row of rep for instance in against what in
// received, and returns the requests received in all.
func holdToRecord(t *testing.T, rep *Report, in *hostile.Instance) int {
	t.Helper()
	got := in.ByTarget()
	total := 0
	for k := range rep.Len() {
		res := rep.Result(k)
		if res.Instance.String() != in.Addr {
			continue
		}
		n := got[res.URL.Target]
		total += n
		assert.LessOrEqual(t, n, res.Attempts, "%s: received %d times, attempts say %d", res.URL, n, res.Attempts)
		msg := errText(res)
		switch {
		case res.Attempts == 0:
			assert.False(t, res.OK, res.URL)
			assert.Contains(t, msg, "not sent", "%s: never written", res.URL)
		case !res.OK:
			assert.NotContains(t, msg, "not sent", "%s: written %d times, so it was sent", res.URL, res.Attempts)
		}
	}
	return total
}

func hostileJob(in *hostile.Instance, n int) Job {
	return Job{URLs: urlsN(n), Instances: []string{in.Addr}, Timeout: 2 * time.Second, Backoff: time.Millisecond}
}

// Answers only the first request of each connection, then stays silent
// (no pipelining, no keep-alive, no Connection: close). After one stall the
// instance gets one request per connection: with the default timeout, one
// timeout in all, not one per URL.
func TestHostileAnswersFirstRequestThenSilent(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		if r.Seq > 0 {
			c.Hold()
			return
		}
		c.Answer(200, "")
	}))
	j := Job{URLs: urlsN(64), Instances: []string{in.Addr}} // default flags
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	total := holdToRecord(t, out.Purge, in)
	for _, r := range results(out.Purge) {
		assert.LessOrEqual(t, r.Attempts, 2, r.URL)
	}
	assert.LessOrEqual(t, total, 64+DefaultPerInstance, "at most one stalled request per first connection")
	stalled := 0
	for _, r := range in.Requests() {
		if r.Seq > 0 {
			stalled++
		}
	}
	assert.LessOrEqual(t, stalled, DefaultPerInstance, "learned: one request per connection after the first stall")
}

// 204 with a body: the body's bytes are garbage in front of the next
// answer, a protocol error at answer k > 0. The rest of the batch is sent
// again one at a time; no URL more than 3 times.
func TestHostile204WithBody(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		c.Write("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")
	}))
	out := run(t, hostileJob(in, 1000))
	require.True(t, out.OK(), out.Purge.Summary())
	total := holdToRecord(t, out.Purge, in)
	for target, n := range in.ByTarget() {
		assert.LessOrEqual(t, n, 3, target)
	}
	assert.LessOrEqual(t, total, 2*1000)
}

// The instance closes right after exactly 64 answers, without saying so:
// a batch whose answers were all read is done.
func TestHostileClosesAfterDepthAnswers(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		c.Answer(200, "")
		if r.Seq == DefaultPipeline-1 {
			c.End()
		}
	}))
	j := hostileJob(in, 1000)
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	total := holdToRecord(t, out.Purge, in)
	assert.LessOrEqual(t, total, 1100)
}

// A keep-alive limit: Connection: close on every 3rd answer. The limit is
// learned: no connection carries more than 3 requests.
func TestHostileKeepAliveLimit(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		if r.Seq == 2 {
			c.Answer(200, "", "Connection: close")
			c.End()
			return
		}
		c.Answer(200, "")
	}))
	out := run(t, hostileJob(in, 1000))
	require.True(t, out.OK(), out.Purge.Summary())
	total := holdToRecord(t, out.Purge, in)
	assert.LessOrEqual(t, total, 1300)
	assert.Equal(t, 1000, total, "requests after Connection: close are never read")
}

// The same limit without Connection: close (a close after 3 answers):
// learned as well.
func TestHostileKeepAliveLimitUnannounced(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		c.Answer(200, "")
		if r.Seq == 2 {
			c.End()
		}
	}))
	out := run(t, hostileJob(in, 1000))
	require.True(t, out.OK(), out.Purge.Summary())
	assert.LessOrEqual(t, holdToRecord(t, out.Purge, in), 1300)
}

// A blackhole reads every request and never answers: what was written is
// "no answer" with its attempts, never "not sent"; what was never written
// is "not sent", and the instance never received it.
func TestHostileBlackhole(t *testing.T) {
	in := hostile.Start(t, func(c *hostile.Conn) { c.Hold() })
	j := hostileJob(in, 100)
	j.Timeout = 200 * time.Millisecond
	out := run(t, j)
	rep := out.Purge
	assert.Equal(t, 100, rep.Failed())
	holdToRecord(t, rep, in)
	written := 0
	for _, r := range results(rep) {
		if r.Attempts > 0 {
			written++
			assert.Contains(t, errText(r), "no answer within 200ms")
		} else {
			assert.ErrorIs(t, r.Err, ErrNotAnswering)
		}
	}
	assert.Positive(t, written)
	assert.Equal(t, written, len(in.ByTarget()), "every written URL arrived, no other")
}

// 200 without a length on a connection that stays open: the instance
// answered 200, which is what a purge needs; the body's end is not waited
// for. It is never "unreachable".
func TestHostile200WithoutLength(t *testing.T) {
	closed := make(chan bool, 100)
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		c.Write("HTTP/1.1 200 OK\r\n\r\nstreaming...")
		closed <- c.Wait(time.Minute)
	}))
	j := hostileJob(in, 10)
	j.Timeout = time.Minute // were the body awaited, this test would take minutes
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	for _, r := range results(out.Purge) {
		assert.Equal(t, 200, r.Status)
		assert.Equal(t, 1, r.Attempts)
	}
	assert.Equal(t, 10, holdToRecord(t, out.Purge, in))
	for range 10 {
		assert.True(t, <-closed, "cdnpurge closed the connection itself")
	}

	// A failure status without a length says what came with it.
	bad := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		c.Write("HTTP/1.1 500 Internal Server Error\r\n\r\nbackend sick")
		c.Wait(time.Minute)
	}))
	j = hostileJob(bad, 1)
	j.Timeout, j.Attempts = time.Minute, 1
	res := run(t, j).Purge.Result(0)
	assert.Equal(t, 500, res.Status)
	assert.Contains(t, errText(res), `500 Internal Server Error: "backend sick"`)
	assert.NotContains(t, errText(res), "unreachable")
}

// A declared body that never arrives in full: the instance answered, and
// the row says with what.
func TestHostileBodyNeverEnds(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		c.Write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
		c.Hold()
	}))
	j := hostileJob(in, 5)
	j.Timeout, j.Attempts = 200*time.Millisecond, 2
	out := run(t, j)
	for _, r := range results(out.Purge) {
		assert.False(t, r.OK)
		assert.Equal(t, 200, r.Status)
		assert.Contains(t, errText(r), "answered 200 OK, but its body never ended")
		assert.NotErrorIs(t, r.Err, ErrUnreachable)
		assert.NotErrorIs(t, r.Err, ErrNotAnswering)
	}
	holdToRecord(t, out.Purge, in)
}

// Every purge method fails when answered as an ordinary cache hit, or when
// the VCL passes it to the application (one X-Varnish id and an Age).
func TestHostileEveryPurgeMethodAnsweredAsACacheHit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hdr   []string
		cause error
	}{
		{"hit", []string{"X-Varnish: 11 5", "Age: 30"}, ErrServedFromCache},
		{"passed", []string{"X-Varnish: 12", "Age: 0"}, ErrPurgeNotHandled},
	} {
		in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) { c.Answer(200, "<html>WordPress</html>", tc.hdr...) }))
		for _, j := range []Job{
			{Method: "PURGE"}, {Method: "BAN"}, {Method: "PURGEKEYS"},
			{Ban: "^/p/"}, {Tags: []string{"post-1"}},
		} {
			j.URLs, j.Instances, j.Attempts = []string{"http://e.com/p/1"}, []string{in.Addr}, 1
			res := run(t, j).Purge.Result(0)
			assert.False(t, res.OK, "%s %s", tc.name, j.Method)
			assert.ErrorIs(t, res.Err, tc.cause, "%s %s", tc.name, j.Method)
			method := j.Method
			if method == "" {
				method = map[bool]string{true: "BAN", false: "PURGEKEYS"}[j.Ban != ""]
			}
			assert.Contains(t, errText(res), "its VCL does not handle "+method, tc.name)
		}
	}
}

// 304 has its own words, not a redirect's.
func TestHostile304(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) { c.Write("HTTP/1.1 304 Not Modified\r\n\r\n") }))
	j := hostileJob(in, 1)
	res := run(t, j).Purge.Result(0)
	assert.False(t, res.OK)
	assert.Equal(t, 304, res.Status)
	assert.NotContains(t, errText(res), "redirect")
	assert.Contains(t, errText(res), "conditional answer")
}

// Each request's time is its own, from its write to its answer, not its
// batch's: in a batch of two, the second answer comes 150 ms after the
// first.
func TestHostilePerRequestTimes(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		if r.Target == "/slow" {
			time.Sleep(150 * time.Millisecond) // the instance's own pace, not a wait for readiness
		}
		c.Answer(200, "")
	}))
	// Two warm-up URLs deepen the connection to a batch of two.
	j := Job{URLs: []string{"http://e.com/w1", "http://e.com/w2", "http://e.com/fast", "http://e.com/slow"}, Instances: []string{in.Addr}, PerInstance: 1}
	out := run(t, j)
	require.True(t, out.OK())
	fast, slow := out.Purge.Result(2), out.Purge.Result(3)
	reqs := in.Requests()
	require.Len(t, reqs, 4)
	assert.Equal(t, reqs[2].Conn, reqs[3].Conn, "fast and slow went on one connection")
	assert.GreaterOrEqual(t, slow.Duration-fast.Duration, 140*time.Millisecond, "fast %s, slow %s", fast.Duration, slow.Duration)
	stats := out.Purge.Stats()[0]
	assert.Less(t, stats.P50, 140*time.Millisecond, "the median is the requests' own times")
}

// A run stopped part way (the instance holds the last URL and the run is
// cancelled then): the summary's counts add up.
func TestHostilePartialRunCountsAddUp(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := fmt.Errorf("stopped by the test")
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) {
		if strings.HasSuffix(r.Target, "/1999") {
			cancel(stop)
			c.Hold()
			return
		}
		c.Answer(200, "")
	}))
	j := hostileJob(in, 2000)
	j.PerInstance, j.Timeout = 1, time.Minute
	out, err := j.Run(ctx)
	require.NoError(t, err)
	rep := out.Purge
	assert.Equal(t, 1, rep.Failed())
	assert.Contains(t, rep.Summary(), "FAILED: purged 1999 of 2000 (2000 URLs x 1 instance)")
	assert.Contains(t, rep.Summary(), "0/1 instances complete; 1 failed")
	last := rep.Result(1999)
	assert.Equal(t, 1, last.Attempts)
	assert.ErrorIs(t, last.Err, ErrStopped)
	assert.ErrorIs(t, last.Err, stop, "the caller's cause is kept")
	assert.Contains(t, errText(last), "stopped before an answer came: stopped by the test")
	holdToRecord(t, rep, in)
}

// URLs whose canonical form a browser would send: the instance receives
// exactly that.
func TestHostileCanonicalTargets(t *testing.T) {
	in := hostile.Start(t, hostile.Each(func(c *hostile.Conn, r *hostile.Request) { c.Answer(200, "") }))
	j := hostileJob(in, 0)
	j.URLs = []string{`https://cdn.example\a\b`, "https://cdn.example/%zz"}
	out := run(t, j)
	require.True(t, out.OK(), out.Purge.Summary())
	got := in.ByTarget()
	assert.Equal(t, map[string]int{"/a/b": 1, "/%zz": 1}, got)
	for _, r := range in.Requests() {
		assert.Equal(t, "cdn.example", r.Host)
	}
}
