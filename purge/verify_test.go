package purge

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

func headerInstance(t *testing.T, header ...string) *instance {
	return startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
	})
}

// check is a verify-only job on instances.
func check(urls []string, expect Expect, instances ...string) Job {
	j := job(urls, instances...)
	j.VerifyOnly, j.Verify = true, []Expect{expect}
	return j
}

func TestVerifyEachHeaderForm(t *testing.T) {
	for _, tc := range []struct {
		header []string
		class  cachestatus.Class
	}{
		{[]string{"Cache-Status", "varnish-1; hit; ttl=100"}, cachestatus.Hit},
		{[]string{"Cache-Status", "varnish-1; hit; ttl=-5"}, cachestatus.Stale},
		{[]string{"Cache-Status", "varnish-1; fwd=miss; stored"}, cachestatus.Miss},
		{[]string{"Cache-Status", "varnish-1; fwd=bypass"}, cachestatus.Bypass},
		{[]string{"Cache-Status", "region=iad; origin=app,app.origin.local; ttl=10.000; storage=memory; hit; hits=3"}, cachestatus.Hit},
		{[]string{"Cache-Status", "region=iad; ttl=-1.000; storage=memory; hit; stale; hits=3"}, cachestatus.Stale},
		{[]string{"Cache-Status", "region=iad; storage=memory; miss; hits=0"}, cachestatus.Miss},
		{[]string{"X-Cache", "HIT"}, cachestatus.Hit},
		{[]string{"X-Cache", "hit graced cached"}, cachestatus.Stale},
		{[]string{"X-Cache", "HIT, MISS"}, cachestatus.Miss},
		{[]string{"X-Cache", "Miss from cloudfront", "X-Varnish", "32770 32768"}, cachestatus.Hit},
		{[]string{"X-Varnish", "32770"}, cachestatus.Miss},
		{[]string{"Cache-Status", "((( not a header"}, cachestatus.Unknown},
		{nil, cachestatus.Unknown},
	} {
		in := headerInstance(t, tc.header...)
		out := run(t, check([]string{"https://example.com/feed"}, ExpectHit, in.addr))
		c := out.Verify[0].Result(0)
		assert.Equal(t, tc.class, c.Class, "%v", tc.header)
		assert.Equal(t, tc.class.IsHit(), c.OK, "%v", tc.header)
		assert.Equal(t, 200, c.Status)
		r := in.requests()[0]
		assert.Equal(t, "HEAD", r.Method)
		assert.Equal(t, "example.com", r.Host)
		if tc.header == nil {
			assert.Contains(t, errText(c), "no cache evidence")
		}
	}
}

func TestExpectations(t *testing.T) {
	for _, tc := range []struct {
		e     Expect
		class cachestatus.Class
		want  bool
	}{
		{ExpectHit, cachestatus.Hit, true}, {ExpectHit, cachestatus.Stale, true}, {ExpectHit, cachestatus.Miss, false},
		{ExpectFresh, cachestatus.Hit, true}, {ExpectFresh, cachestatus.Stale, false},
		{ExpectStale, cachestatus.Stale, true}, {ExpectStale, cachestatus.Hit, false},
		{ExpectMiss, cachestatus.Miss, true}, {ExpectMiss, cachestatus.Hit, false}, {ExpectMiss, cachestatus.Unknown, false},
		{ExpectAny, cachestatus.Unknown, true},
	} {
		assert.Equal(t, tc.want, tc.e.Match(tc.class), "%s %s", tc.e, tc.class)
	}
	_, err := ParseExpect("warm")
	assert.ErrorContains(t, err, "use purged, current, hit, fresh, stale, miss or any")
}

func TestVerifyStaleInstanceFailsFresh(t *testing.T) {
	fresh := headerInstance(t, "Cache-Status", "c; hit; ttl=50")
	stale := headerInstance(t, "Cache-Status", "c; hit; ttl=-50")
	out := run(t, check([]string{"https://example.com/"}, ExpectFresh, fresh.addr, stale.addr))
	rep := out.Verify[0]
	assert.False(t, out.OK())
	assert.Equal(t, 1, rep.Failed())
	for _, c := range results(rep) {
		assert.Equal(t, c.Instance.String() == fresh.addr, c.OK)
		if !c.OK {
			assert.Contains(t, errText(c), "stale, expected fresh")
			assert.Equal(t, "c; hit; ttl=-50", c.CacheStatus)
		}
	}
	assert.Contains(t, rep.Summary(), "FAILED: verified 1 URL on 1/2 instances: expected fresh")
	assert.EqualError(t, out.Err(), "verify fresh: 1 of 2 checks did not match on 1 of 2 instances")
}

func TestVerifyFailsOnServerErrors(t *testing.T) {
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	for _, e := range []Expect{ExpectHit, ExpectAny} {
		out := run(t, check([]string{"https://example.com/"}, e, in.addr))
		c := out.Verify[0].Result(0)
		assert.False(t, c.OK, e)
		assert.Contains(t, errText(c), "503 Service Unavailable")
	}
}

// After a purge, live traffic may refill an instance before the check.
// Without the instance's own clock, Age orders the copy: one older than
// the purge fails, and one stored within a second of it cannot be told
// (it fails, unless the job accepts that).
func TestPurgeThenVerifyPurgedByAge(t *testing.T) {
	young := headerInstance(t, "Cache-Status", "c; hit", "Age", "0")
	missed := headerInstance(t, "Cache-Status", "c; fwd=miss")
	old := headerInstance(t, "Cache-Status", "c; hit", "Age", "3600")
	j := job([]string{"https://example.com/"}, young.addr, missed.addr, old.addr)
	j.Verify = []Expect{ExpectPurged}
	out := run(t, j)
	rep := out.Verify[0]
	require.NotNil(t, out.Purge)
	for _, c := range results(rep) {
		switch c.Instance.String() {
		case young.addr:
			assert.False(t, c.OK)
			assert.True(t, c.Uncertain)
			assert.ErrorIs(t, c.Err, ErrUncertain)
			assert.Contains(t, errText(c), "cannot tell: Age 0 puts the copy within a second of the purge")
		case missed.addr:
			assert.True(t, c.OK)
			assert.False(t, c.Refilled)
		case old.addr:
			assert.False(t, c.OK)
			assert.True(t, c.PredatesPurge)
			assert.ErrorIs(t, c.Err, ErrOldCopy)
			assert.Contains(t, errText(c), "3600s old, older than the purge")
		}
	}
	assert.Equal(t, []string{"PURGE", "HEAD"}, []string{young.requests()[0].Method, young.requests()[1].Method})

	j.AcceptUncertain = true
	rep = run(t, j).Verify[0]
	for _, c := range results(rep) {
		if c.Instance.String() == young.addr {
			assert.True(t, c.OK, "accepted as the job said")
			assert.True(t, c.Refilled)
			assert.True(t, c.Uncertain)
			assert.Contains(t, c.Note, "within a second of the purge")
		}
	}
	assert.Contains(t, rep.Summary(), "1 refilled by traffic after the purge")
}

// Rounds are spaced by the interval, as the clock the code controls says.
func TestVerifyWaitRoundsFollowTheInterval(t *testing.T) {
	var n atomic.Int64
	warming := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.Header().Set("Cache-Status", "c; fwd=miss; stored")
		} else {
			// Older than this check's own misses: a copy a browser's
			// request stored.
			w.Header().Set("Cache-Status", "c; hit; ttl=10")
			w.Header().Set("Age", "100")
		}
	})
	warm := headerInstance(t, "Cache-Status", "c; hit")
	cold := headerInstance(t, "Cache-Status", "c; fwd=miss")

	now := time.Unix(1_000_000, 0)
	var slept []time.Duration
	clk := &clock{now: func() time.Time { return now }, sleep: func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		now = now.Add(d)
		return nil
	}}
	j := check([]string{"https://example.com/"}, ExpectHit, warming.addr, warm.addr)
	j.Wait, j.Interval, j.clock = time.Minute, 5*time.Second, clk
	out := run(t, j)
	assert.True(t, out.OK(), out.Verify[0].Summary())
	assert.Equal(t, 3, out.Verify[0].Rounds)
	assert.Equal(t, []time.Duration{5 * time.Second, 5 * time.Second}, slept)
	assert.Len(t, warm.requests(), 1, "a matched instance is not asked again")

	slept = nil
	j = check([]string{"https://example.com/"}, ExpectHit, cold.addr, warm.addr)
	j.Wait, j.Interval, j.clock = 20*time.Second, 5*time.Second, clk
	out = run(t, j)
	rep := out.Verify[0]
	assert.False(t, out.OK())
	assert.Equal(t, 5, rep.Rounds, "rounds at 0, 5, 10, 15 and 20 s")
	assert.Equal(t, []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}, slept)
	assert.Equal(t, 20*time.Second, rep.Duration)
	assert.Len(t, cold.requests(), 5)

	// A wait that does not end on a round, or is shorter than the
	// interval, still asks once more as it ends.
	for _, tc := range []struct {
		wait  time.Duration
		slept []time.Duration
	}{
		{12 * time.Second, []time.Duration{5 * time.Second, 5 * time.Second, 2 * time.Second}},
		{2 * time.Second, []time.Duration{2 * time.Second}},
	} {
		slept, now = nil, now.Add(time.Hour)
		before := len(cold.requests())
		j.Wait = tc.wait
		rep := run(t, j).Verify[0]
		assert.Equal(t, tc.slept, slept, "wait %s", tc.wait)
		assert.Equal(t, len(tc.slept)+1, rep.Rounds, "wait %s", tc.wait)
		assert.Equal(t, tc.wait, rep.Duration, "wait %s", tc.wait)
		assert.Len(t, cold.requests(), before+len(tc.slept)+1, "wait %s", tc.wait)
	}
}

func TestVerifyVariantSelectedByHeader(t *testing.T) {
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Cache-Status", "c; hit")
		} else {
			w.Header().Set("Cache-Status", "c; fwd=vary-miss")
		}
	})
	j := check([]string{"https://example.com/"}, ExpectHit, in.addr)
	assert.False(t, run(t, j).OK())
	j.Headers = []string{"Accept-Encoding: gzip"}
	assert.True(t, run(t, j).OK())
}

func TestVerifyGETReadsLittleOfALargeBody(t *testing.T) {
	big := strings.Repeat("x", 10<<20)
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit")
		_, _ = w.Write([]byte(big))
	})
	j := check([]string{"https://example.com/episode.mp3", "https://example.com/episode2.mp3"}, ExpectHit, in.addr)
	j.VerifyMethod = "get"
	out := run(t, j)
	require.True(t, out.OK(), out.Verify[0].Summary())
	for _, c := range results(out.Verify[0]) {
		assert.Less(t, c.BytesRead, int64(16<<10), "read %d bytes of a 10 MiB body", c.BytesRead)
		assert.Positive(t, c.BytesRead)
	}
	assert.Equal(t, "GET", in.requests()[0].Method)
}

func TestVerifyDoesNotSendToken(t *testing.T) {
	in := headerInstance(t, "Cache-Status", "c; hit")
	j := check([]string{"https://example.com/"}, ExpectHit, in.addr)
	j.Token = "tok"
	run(t, j)
	assert.Empty(t, in.requests()[0].Token)
}

func TestVerifyHEADKeepsConnectionsAlive(t *testing.T) {
	in := headerInstance(t, "Cache-Status", "c; hit")
	var urls []string
	for i := 0; i < 50; i++ {
		urls = append(urls, "https://example.com/p"+strings.Repeat("x", i))
	}
	j := check(urls, ExpectHit, in.addr)
	j.PerInstance = 1
	require.True(t, run(t, j).OK())
	assert.Equal(t, int64(1), in.conns.Load())
}

// A HEAD answer that carries a body must not have that body read as the
// answer to the next check.
func TestVerifyHEADAnswerWithABodyIsNotPairedWithTheNextCheck(t *testing.T) {
	s := startRaw(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		for {
			line, _, err := s.readRequest(br)
			if err != nil {
				return
			}
			if strings.HasSuffix(line, "/a") {
				body := "HTTP/1.1 200 OK\r\nCache-Status: c; hit\r\nContent-Length: 0\r\n\r\n"
				_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nCache-Status: c; hit\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				continue
			}
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nCache-Status: c; fwd=miss\r\nContent-Length: 10\r\n\r\n"))
		}
	})
	j := check([]string{"http://e.com/a", "http://e.com/b"}, ExpectHit, s.addr)
	j.PerInstance = 1
	out := run(t, j)
	rs := results(out.Verify[0])
	assert.Equal(t, cachestatus.Hit, rs[0].Class)
	assert.Equal(t, cachestatus.Miss, rs[1].Class, "/b's own answer says miss")
	assert.Equal(t, int64(2), s.conns.Load(), "the connection with unread bytes was not used again")
}
