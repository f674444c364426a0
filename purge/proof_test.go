package purge

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

// instanceClock is an instance's own clock, far from this process's: the
// stamps are compared with each other only.
const instanceClock = 1_900_000_000

// stampedInstance answers PURGE with the instance's time of the purge and
// how many objects it removed, and every other request with a hit whose
// copy was fetched fetchOffset after the purge (negative: before it), of
// age age (-1: no Age header).
func stampedInstance(t *testing.T, fetchOffset time.Duration, age int, objects int) *instance {
	purged := time.Unix(instanceClock, 250_000_000)
	return startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PURGE" {
			w.Header().Set(PurgeTimeHeader, stampString(purged))
			if objects >= 0 {
				w.Header().Set(ObjectsHeader, strconv.Itoa(objects))
			}
			return
		}
		w.Header().Set("Cache-Status", "c; hit; ttl=100")
		w.Header().Set(FetchTimeHeader, stampString(purged.Add(fetchOffset)))
		if age >= 0 {
			w.Header().Set("Age", strconv.Itoa(age))
		}
	})
}

// stampString writes t as the shipped VCL does: seconds, six decimals.
func stampString(t time.Time) string {
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
}

func TestParseStamp(t *testing.T) {
	for v, want := range map[string]int64{
		"1752000000.123456": 1752000000123456, "1752000000": 1752000000000000, " 1752000000.5 ": 1752000000500000,
		"1752000000.1234567": 1752000000123456, "1752000000.": 1752000000000000,
		"": 0, "abc": 0, "12": 0, "1752000000.12a": 0, "-1752000000": 0, "99999999999999": 0, "1752000000 1": 0,
	} {
		assert.Equal(t, want, parseStamp(v), "%q", v)
		assert.Equal(t, want, parseStamp([]byte(v)), "%q as bytes", v)
	}
}

// The instance's own clock orders a copy exactly, whatever its Age: a copy
// fetched 1 ms before the purge is old (a fetch in flight survives a
// purge), and one fetched after passes though it is 100 s old (an
// upstream cache's Age).
func TestVerifyPurgedByTheInstancesClock(t *testing.T) {
	inFlight := stampedInstance(t, -time.Millisecond, 0, 0)
	upstream := stampedInstance(t, 300*time.Millisecond, 100, 1)
	j := job([]string{"https://example.com/"}, inFlight.addr, upstream.addr)
	j.Verify = []Expect{ExpectPurged}
	out := run(t, j)
	for _, c := range results(out.Purge) {
		assert.Equal(t, time.Unix(instanceClock, 250_000_000), c.PurgedAt)
	}
	for _, c := range results(out.Verify[0]) {
		switch c.Instance.String() {
		case inFlight.addr:
			assert.False(t, c.OK)
			assert.True(t, c.PredatesPurge)
			assert.ErrorIs(t, c.Err, ErrOldCopy)
			assert.Contains(t, errText(c), "its copy's fetch began 1.0ms before the purge, on the instance's own clock: a fetch in flight during the purge survives it; purge again")
			assert.Equal(t, time.Unix(instanceClock, 249_000_000), c.FetchedAt)
		case upstream.addr:
			assert.True(t, c.OK, errText(c))
			assert.True(t, c.Refilled)
			assert.False(t, c.Uncertain)
		}
	}
}

// A hostile instance answers 200 to PURGE, purges nothing, and serves its
// copy with "X-Varnish: 1003 5" and "Age: 0": without a clock of its own,
// that copy cannot be told from a refill, so it does not pass.
func TestVerifyPurgedHostileAgeZero(t *testing.T) {
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "PURGE" {
			w.Header().Set("X-Varnish", "1003 5")
			w.Header().Set("Age", "0")
		}
	})
	j := job([]string{"https://example.com/"}, in.addr)
	j.Verify = []Expect{ExpectPurged}
	out := run(t, j)
	c := out.Verify[0].Result(0)
	assert.False(t, c.OK)
	assert.ErrorIs(t, c.Err, ErrUncertain)
}

func TestAgeOrder(t *testing.T) {
	// The purge was sent at 0 and its last answer came at 0.2 s.
	base := time.Unix(1_000_000, 0)
	v := &verifier{pw: &purgeWindow{start: base, end: base.Add(200 * time.Millisecond)}}
	for _, tc := range []struct {
		sent, answered time.Duration
		age            int
		want           order
	}{
		{300 * time.Millisecond, 310 * time.Millisecond, 0, orderUncertain}, // stored within the last second
		{1200 * time.Millisecond, 1210 * time.Millisecond, 0, orderAfter},   // at most 1 s old, asked 1 s after the purge
		{1200 * time.Millisecond, 1210 * time.Millisecond, 1, orderUncertain},
		{1200 * time.Millisecond, 1210 * time.Millisecond, 2, orderBefore}, // at least 2 s old: before the purge
		{300 * time.Millisecond, 310 * time.Millisecond, 1, orderBefore},
		{5 * time.Second, 5 * time.Second, 3, orderAfter},
		{5 * time.Second, 5 * time.Second, 4, orderUncertain},
		{5 * time.Second, 5*time.Second + time.Millisecond, 5, orderUncertain},
		{5 * time.Second, 5*time.Second + time.Millisecond, 6, orderBefore},
	} {
		v.roundStart = base.Add(tc.sent)
		assert.Equal(t, tc.want, v.ageOrder(tc.age, base.Add(tc.answered)), "%+v", tc)
	}
}

// Age alone says hit, never fresh or stale: expecting fresh fails, and
// says why.
func TestVerifyFreshNeedsACacheHeader(t *testing.T) {
	ageOnly := headerInstance(t, "Age", "40")
	xvOnly := headerInstance(t, "X-Varnish", "5 3", "Age", "2")
	header := headerInstance(t, "Cache-Status", "c; hit; ttl=10", "Age", "40")
	for _, e := range []Expect{ExpectFresh, ExpectStale} {
		out := run(t, check([]string{"https://example.com/"}, e, ageOnly.addr, xvOnly.addr, header.addr))
		for _, c := range results(out.Verify[0]) {
			if c.Instance.String() == header.addr {
				assert.Equal(t, e == ExpectFresh, c.OK)
				continue
			}
			assert.False(t, c.OK)
			assert.True(t, c.StaleUnknown)
			assert.ErrorIs(t, c.Err, ErrStaleUnknown)
			assert.Contains(t, errText(c), "cannot tell fresh from stale: the instance sends no cache header")
		}
	}
	out := run(t, check([]string{"https://example.com/"}, ExpectHit, ageOnly.addr, xvOnly.addr))
	assert.True(t, out.OK(), "hit needs no freshness")
}

// A VCL that removes X-Varnish and delivers the origin's stored
// "X-Cache: MISS" with Age 9999: that is the old copy, not a miss.
func TestVerifyStoredMissHeaderOlderThanThePurge(t *testing.T) {
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "PURGE" {
			w.Header().Set("X-Cache", "MISS")
			w.Header().Set("Age", "9999")
		}
	})
	for _, e := range []Expect{ExpectPurged, ExpectMiss} {
		j := job([]string{"https://example.com/"}, in.addr)
		j.Verify = []Expect{e}
		c := run(t, j).Verify[0].Result(0)
		assert.False(t, c.OK, e)
		assert.Equal(t, cachestatus.Hit, c.Class, e)
		assert.Contains(t, c.Note, "x-cache says miss, but there is no X-Varnish and Age 9999 is older than the purge", e)
	}
	// Without a purge to compare with, the header decides (as before).
	c := run(t, check([]string{"https://example.com/"}, ExpectMiss, in.addr)).Verify[0].Result(0)
	assert.True(t, c.OK)
}

func TestVerifyCacheHeader(t *testing.T) {
	in := headerInstance(t, "X-App-Cache", "hit", "Age", "0")
	j := check([]string{"https://example.com/"}, ExpectFresh, in.addr)
	assert.False(t, run(t, j).OK(), "Age 0 alone is unknown")
	j.CacheHeader = "x-app-cache"
	c := run(t, j).Verify[0].Result(0)
	assert.True(t, c.OK, errText(c))
	assert.Equal(t, "x-app-cache", c.Source)
	j.CacheHeader = "bad header"
	_, err := j.Run(context.Background())
	assert.ErrorContains(t, err, `cache header "bad header": not a valid header name`)
}

// A verify request is a browser's: Accept-Encoding and User-Agent as one
// sends them, unless the job names others.
func TestVerifyAsksAsABrowser(t *testing.T) {
	in := headerInstance(t, "Cache-Status", "c; hit", "Vary", "Accept-Encoding, User-Agent, Cookie")
	out := run(t, check([]string{"https://example.com/"}, ExpectHit, in.addr))
	r := in.requests()[0]
	assert.Equal(t, DefaultVerifyAcceptEncoding, r.Header.Get("Accept-Encoding"))
	assert.True(t, strings.HasPrefix(r.UA, "Mozilla/5.0 "), r.UA)
	assert.Contains(t, r.UA, "cdnpurge/")
	rep := out.Verify[0]
	assert.Equal(t, []string{"Accept-Encoding: " + DefaultVerifyAcceptEncoding, "User-Agent: " + r.UA}, rep.RequestHeaders)
	assert.Equal(t, "Accept-Encoding, User-Agent, Cookie", rep.Result(0).Vary)
	require.Len(t, rep.Warnings, 2, "%q", rep.Warnings)
	assert.Contains(t, rep.Warnings[0], "Vary: Cookie on 1 answer: verify asked for one variant")
	assert.Contains(t, rep.Warnings[1], "Vary: User-Agent on 1 answer: verify asked for one variant (Accept-Encoding: gzip, deflate, br; User-Agent: Mozilla/5.0")
	assert.Contains(t, rep.Warnings[1], "copies for other values of User-Agent were not checked")
	assert.Equal(t, rep.Warnings, out.Warnings, "every format writes the outcome's warnings")

	j := check([]string{"https://example.com/"}, ExpectHit, in.addr)
	j.Headers = []string{"Accept-Encoding: identity", "User-Agent: curl/8", "Cookie: a=1"}
	rep = run(t, j).Verify[0]
	r = in.requests()[1]
	assert.Equal(t, "identity", r.Header.Get("Accept-Encoding"))
	assert.Equal(t, "curl/8", r.UA)
	assert.Empty(t, rep.Warnings, "the job chose every varied header's value")
}

// A cached 404, 301 or 302 is a hit: it passes a warm check, with a
// warning, unless the status is expected.
func TestVerifyHitOnACachedErrorWarns(t *testing.T) {
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit")
		switch r.URL.Path {
		case "/gone":
			w.WriteHeader(http.StatusNotFound)
		case "/moved":
			w.Header().Set("Location", "/x")
			w.WriteHeader(http.StatusMovedPermanently)
		}
	})
	out := run(t, check([]string{"https://example.com/gone", "https://example.com/moved", "https://example.com/ok"}, ExpectHit, in.addr))
	assert.True(t, out.OK())
	rep := out.Verify[0]
	assert.Equal(t, []int{404, 301, 200}, []int{rep.Result(0).Status, rep.Result(1).Status, rep.Result(2).Status})
	require.Len(t, rep.Warnings, 2)
	assert.Equal(t, "1 check served a cached 301 Moved Permanently (e.g. https://example.com/moved on "+in.addr+"): a hit, but on an error or a redirect, not the page; accept the status as expected if it is", rep.Warnings[0])
	assert.Contains(t, rep.Warnings[1], "cached 404 Not Found")

	j := check([]string{"https://example.com/gone"}, ExpectHit, in.addr)
	j.OKStatus = []int{404}
	assert.Empty(t, run(t, j).Verify[0].Warnings)
}

// A warm check never counts the copy its own previous round stored: its
// first request missed (and stored it), so the next round's hit is not a
// browser's.
func TestVerifyWarmCheckDoesNotCountItsOwnCopy(t *testing.T) {
	var n atomic.Int64
	stamped := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(FetchTimeHeader, "1900000000.000001")
		if n.Add(1) == 1 {
			w.Header().Set("Cache-Status", "c; fwd=miss; stored")
			return
		}
		w.Header().Set("Cache-Status", "c; hit")
	})
	var m atomic.Int64
	aged := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if m.Add(1) == 1 {
			w.Header().Set("Cache-Status", "c; fwd=miss; stored")
			return
		}
		w.Header().Set("Cache-Status", "c; hit")
		w.Header().Set("Age", "0")
	})
	j := check([]string{"https://example.com/"}, ExpectHit, stamped.addr, aged.addr)
	j.Wait, j.Interval = 2*time.Second, MinInterval
	out := run(t, j)
	rep := out.Verify[0]
	assert.False(t, out.OK())
	assert.GreaterOrEqual(t, rep.Rounds, 2)
	for _, c := range results(rep) {
		assert.False(t, c.OK)
		assert.True(t, c.SelfStored)
		assert.Equal(t, cachestatus.Hit, c.Class)
		assert.Contains(t, errText(c), "hit on the copy this check's own request stored in round 1 (a miss then), not a browser's: not counted")
	}

	// A copy stored before the check's own miss is a browser's.
	var k atomic.Int64
	browsers := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(FetchTimeHeader, "1900000000.000001")
		if k.Add(1) == 1 {
			w.Header().Set("Cache-Status", "c; fwd=miss; stored")
			return
		}
		w.Header().Set(FetchTimeHeader, "1900000000.500000")
		w.Header().Set("Cache-Status", "c; hit")
	})
	j = check([]string{"https://example.com/"}, ExpectHit, browsers.addr)
	j.Wait, j.Interval = 2*time.Second, MinInterval
	out = run(t, j)
	assert.True(t, out.OK(), out.Verify[0].Summary())
}

// After a soft purge, an instance serves the old copy stale once while it
// fetches a fresh one: the check passes once the fresh one is served, and
// fails when the old copy is served as fresh (the soft purge did nothing).
func TestVerifySoftPurge(t *testing.T) {
	purged := time.Unix(instanceClock, 0)
	soft := func(expired bool) *instance {
		var asks atomic.Int64
		return startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "PURGE" {
				w.Header().Set(PurgeTimeHeader, stampString(purged))
				return
			}
			switch n := asks.Add(1); {
			case !expired:
				w.Header().Set("Cache-Status", "c; hit; ttl=50")
				w.Header().Set(FetchTimeHeader, stampString(purged.Add(-time.Hour)))
			case n <= 2: // stale, while the background fetch runs
				w.Header().Set("Cache-Status", "c; hit; ttl=-1")
				w.Header().Set(FetchTimeHeader, stampString(purged.Add(-time.Hour)))
			default:
				w.Header().Set("Cache-Status", "c; hit; ttl=100")
				w.Header().Set(FetchTimeHeader, stampString(purged.Add(10*time.Millisecond)))
			}
		})
	}
	expired, notExpired := soft(true), soft(false)
	j := job([]string{"https://example.com/"}, expired.addr, notExpired.addr)
	j.Soft, j.Verify = true, []Expect{ExpectPurged}
	out := run(t, j)
	rep := out.Verify[0]
	assert.GreaterOrEqual(t, rep.Rounds, 3)
	for _, c := range results(rep) {
		if c.Instance.String() == expired.addr {
			assert.True(t, c.OK, errText(c))
			assert.True(t, c.Refilled)
			continue
		}
		assert.False(t, c.OK)
		assert.ErrorIs(t, c.Err, ErrOldCopy)
		assert.Contains(t, errText(c), "still serves the old copy as fresh")
	}
	assert.Len(t, notExpired.requests(), 2, "a failure is final: not asked again")

	// By Age alone: the stale old copy (Age 30), then a new one.
	var asks atomic.Int64
	aged := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PURGE" {
			return
		}
		if asks.Add(1) == 1 {
			w.Header().Set("Cache-Status", "c; hit; ttl=-1")
			w.Header().Set("Age", "30")
			return
		}
		w.Header().Set("Cache-Status", "c; hit; ttl=100")
		w.Header().Set("Age", "0")
	})
	j = job([]string{"https://example.com/"}, aged.addr)
	j.Soft, j.Verify = true, []Expect{ExpectPurged}
	out = run(t, j)
	assert.True(t, out.OK(), out.Verify[0].Summary())
}

// origin serves versioned content: ETag, Last-Modified or neither, by
// path, and counts what it is asked.
type origin struct {
	*instance
	version atomic.Int64
}

func startOrigin(t *testing.T) *origin {
	o := &origin{}
	o.version.Store(1)
	o.instance = startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		v := o.version.Load()
		switch {
		case strings.HasPrefix(r.URL.Path, "/etag/"):
			w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
		case strings.HasPrefix(r.URL.Path, "/lm/"):
			w.Header().Set("Last-Modified", time.Unix(1_700_000_000+v, 0).UTC().Format(http.TimeFormat))
		case strings.HasPrefix(r.URL.Path, "/random/"):
			fmt.Fprintf(w, "random %d", time.Now().UnixNano())
			return
		case strings.HasPrefix(r.URL.Path, "/down/"):
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "%s version %d", r.Host+r.URL.Path, v)
	})
	return o
}

// cacheOf is an instance that serves what o served at version v.
func cacheOf(t *testing.T, v int64, class string) *instance {
	return startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", class)
		switch {
		case strings.HasPrefix(r.URL.Path, "/etag/"):
			w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
		case strings.HasPrefix(r.URL.Path, "/lm/"):
			w.Header().Set("Last-Modified", time.Unix(1_700_000_000+v, 0).UTC().Format(http.TimeFormat))
		}
		if r.Method == "PURGE" {
			return
		}
		fmt.Fprintf(w, "%s version %d", r.Host+r.URL.Path, v)
	})
}

func TestVerifyCurrentComparesWithTheOrigin(t *testing.T) {
	o := startOrigin(t)
	o.version.Store(2)
	current, old := cacheOf(t, 2, "c; hit"), cacheOf(t, 1, "c; hit")
	urls := []string{"https://shop.example/etag/a", "https://shop.example/lm/a", "https://shop.example/body/a"}
	j := check(urls, ExpectCurrent, current.addr, old.addr)
	j.Origin = "http://" + o.addr
	out := run(t, j)
	rep := out.Verify[0]
	assert.Equal(t, 1, rep.InstancesOK())
	for _, c := range results(rep) {
		require.NotNil(t, c.Current, "%s on %s: %s", c.URL, c.Instance, c.Note)
		assert.Equal(t, c.Instance.String() == current.addr, *c.Current)
		assert.Equal(t, *c.Current, c.OK)
		if !c.OK {
			assert.ErrorIs(t, c.Err, ErrNotCurrent)
		}
	}
	assert.Contains(t, errText(at(rep, 0, old.addr)), `serves another version than the origin: ETag "v1", the origin's "v2"`)
	assert.Contains(t, errText(at(rep, 1, old.addr)), "Last-Modified")
	assert.Contains(t, errText(at(rep, 2, old.addr)), "another body")
	assert.Equal(t, "GET", current.requests()[0].Method, "bodies are compared: GET")
	assert.Equal(t, "http://"+o.addr, rep.Origin)
	// The origin was asked twice per URL, with the URL's Host and path, as
	// a browser.
	reqs := o.requests()
	require.Len(t, reqs, 6)
	for _, r := range reqs {
		assert.Equal(t, "shop.example", r.Host)
		assert.Equal(t, DefaultVerifyAcceptEncoding, r.Header.Get("Accept-Encoding"))
	}
}

// purge --verify --origin judges by content: a copy equal to the origin's
// passes whatever its Age; one that differs fails, also when it was stored
// after the purge.
func TestPurgeVerifiedByContent(t *testing.T) {
	o := startOrigin(t)
	o.version.Store(2)
	oldAge := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit")
		w.Header().Set("Age", "5000")
		w.Header().Set("ETag", `"v2"`)
	})
	refilledOld := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; fwd=miss; stored")
		w.Header().Set("ETag", `"v1"`)
	})
	j := job([]string{"https://shop.example/etag/x"}, oldAge.addr, refilledOld.addr)
	j.Verify, j.Origin, j.VerifyMethod = []Expect{ExpectPurged}, "http://"+o.addr, "HEAD"
	rep := run(t, j).Verify[0]
	a, b := byInstance(rep, oldAge.addr), byInstance(rep, refilledOld.addr)
	assert.True(t, a.OK, errText(a))
	assert.False(t, b.OK)
	assert.Contains(t, errText(b), `serves another version than the origin: ETag "v1", the origin's "v2", though its copy was fetched after the purge: the origin, or a cache between it and the instance, served old content`)
	assert.Equal(t, "HEAD", oldAge.requests()[1].Method, "HEAD as asked: the ETags compare")
}

// An origin whose answers vary cannot be compared with: said, not guessed.
// An origin that cannot be read stops the job before anything is sent.
func TestOriginThatVariesOrFails(t *testing.T) {
	o := startOrigin(t)
	in := cacheOf(t, 1, "c; hit")
	j := check([]string{"https://shop.example/random/a"}, ExpectCurrent, in.addr)
	j.Origin = "http://" + o.addr
	c := run(t, j).Verify[0].Result(0)
	assert.False(t, c.OK)
	assert.Nil(t, c.Current)
	assert.ErrorIs(t, c.Err, ErrUncertain)
	assert.Contains(t, errText(c), "cannot compare with the origin: it sends no ETag or Last-Modified, and two requests got different bodies")

	in = cacheOf(t, 1, "c; hit")
	j = job([]string{"https://shop.example/down/a"}, in.addr)
	j.Verify, j.Origin = []Expect{ExpectPurged}, "http://"+o.addr
	_, err := j.Run(context.Background())
	var oe *OriginError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, 502, oe.Status)
	assert.Empty(t, in.requests(), "nothing was sent to any instance")

	j.Origin = "http://127.0.0.1:1"
	_, err = j.Run(context.Background())
	require.ErrorAs(t, err, &oe)
	assert.Contains(t, err.Error(), "connection refused")

	for _, bad := range []string{"ftp://x", "http://", "http://x/path", "http://x/?q=1", "x:80"} {
		j.Origin = bad
		_, err = j.Run(context.Background())
		var je *JobError
		assert.ErrorAs(t, err, &je, bad)
	}
	j = check([]string{"https://shop.example/a"}, ExpectCurrent, in.addr)
	_, err = j.Run(context.Background())
	assert.ErrorContains(t, err, "expect current: needs the origin's address")
}

// --wait with the origin: rounds until every instance is current, each
// instance's time until it was, and the fleet's.
func TestVerifyWaitTimeToConsistency(t *testing.T) {
	o := startOrigin(t)
	o.version.Store(2)
	var asks atomic.Int64
	late := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit")
		v := 1
		if asks.Add(1) > 2 {
			v = 2
		}
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
	})
	early := cacheOf(t, 2, "c; hit")
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clk := &clock{now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }, sleep: func(_ context.Context, d time.Duration) error {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
		return nil
	}}
	j := check([]string{"https://shop.example/etag/x"}, ExpectCurrent, late.addr, early.addr)
	j.Origin, j.Wait, j.Interval, j.clock = "http://"+o.addr, time.Minute, 5*time.Second, clk
	rep := run(t, j).Verify[0]
	assert.True(t, rep.OK(), rep.Summary())
	assert.Equal(t, 3, rep.Rounds)
	assert.Equal(t, 10*time.Second, byInstance(rep, late.addr).MatchedAfter)
	assert.Equal(t, time.Duration(0), byInstance(rep, early.addr).MatchedAfter)
	assert.Equal(t, 10*time.Second, rep.ConsistentAfter)
	assert.Contains(t, rep.Summary(), "every instance matched after 10.00s")
	for _, st := range rep.Stats() {
		if st.Instance.String() == late.addr {
			assert.Equal(t, 10*time.Second, st.MatchedAfter)
		}
	}
}

// Each purge answer may say how many objects it removed; when every
// instance that says counts 0 for a URL, the report warns.
func TestPurgeObjectCounts(t *testing.T) {
	none := stampedInstance(t, time.Second, 0, 0)
	some := stampedInstance(t, time.Second, 0, 2)
	silent := headerInstance(t)
	j := job([]string{"https://example.com/a"}, none.addr, silent.addr)
	out := run(t, j)
	assert.Equal(t, []int{0, -1}, []int{byInstance(out.Purge, none.addr).Objects, byInstance(out.Purge, silent.addr).Objects})
	assert.Equal(t, []string{"0 objects purged on any instance for https://example.com/a: was anything cached under this host and path?"}, out.Warnings)

	out = run(t, job([]string{"https://example.com/a"}, none.addr, some.addr))
	assert.Empty(t, out.Warnings, "0 on some instances is normal")
	out = run(t, job([]string{"https://example.com/a"}, silent.addr))
	assert.Empty(t, out.Warnings, "nothing said, nothing warned")
	assert.Equal(t, -1, out.Purge.Result(0).Objects)
}

// A long wait keeps only the last round's results: errors and strings do
// not pile up round after round.
func TestVerifyWaitKeepsOnlyTheLastRound(t *testing.T) {
	var n atomic.Int64
	cold := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", fmt.Sprintf("c; fwd=miss; detail=round-%d", n.Add(1)))
	})
	now := time.Unix(1_000_000, 0)
	clk := &clock{now: func() time.Time { return now }, sleep: func(_ context.Context, d time.Duration) error { now = now.Add(d); return nil }}
	var urls []string
	for i := range 20 {
		urls = append(urls, fmt.Sprintf("https://example.com/%d", i))
	}
	j := check(urls, ExpectHit, cold.addr)
	j.Wait, j.Interval, j.clock = time.Minute, time.Second, clk
	rep := run(t, j).Verify[0]
	assert.Equal(t, 61, rep.Rounds)
	assert.Len(t, rep.errs, 20, "one error per result, of the last round")
	assert.LessOrEqual(t, len(rep.strs), 2*20+3, "the last round's strings only")
	assert.Contains(t, rep.Result(0).CacheStatus, "round-")
}

func TestBanTarget(t *testing.T) {
	for re, want := range map[string]string{
		"^/p/42/":       "/p/42/",
		"^/p/42/?":      "/p/42",
		"^/p/(42|43)/":  "/p/4",
		"^/p/4\\.2":     "/p/4.2",
		"^/assets/.*":   "/assets/",
		"^/(?i)Assets/": "/",
		"^(/feed)$":     "/feed",
		"^/":            "/",
		"^/a b":         "/a%20b",
		"^/caf\u00e9/":  "/caf%C3%A9/",
		"\\A/x/":        "/x/",
	} {
		got, err := banTarget(re, false)
		if assert.NoError(t, err, re) {
			assert.Equal(t, want, got, re)
		}
	}
	for re, why := range map[string]string{
		"\\.css$":   "not anchored at the start of the path with ^",
		"/p/42":     "not anchored",
		"^.*\\.css": "nothing literal follows the ^",
		"^p/42":     `every path it matches starts with "p/42", and paths start with /`,
		"(?m)^/p/":  "not anchored",
		"^/p/(?<=x": "it cannot be read",
	} {
		_, err := banTarget(re, false)
		assert.ErrorContains(t, err, why, re)
		assert.ErrorContains(t, err, "or declare the ban broad", re)
		got, err := banTarget(re, true)
		assert.NoError(t, err, re)
		assert.Equal(t, "/", got, re)
	}
}

// A ban's request path is its expression's literal prefix; its headers
// carry the expression itself.
func TestBanSendsTheLiteralPrefix(t *testing.T) {
	in := headerInstance(t)
	j := job([]string{"https://example.com/ignored"}, in.addr)
	j.Ban = "^/p/42/"
	out := run(t, j)
	require.True(t, out.OK())
	r := in.requests()[0]
	assert.Equal(t, "BAN", r.Method)
	assert.Equal(t, "/p/42/", r.RequestURI)
	assert.Equal(t, "^/p/42/", r.Header.Get("X-Url"))
	assert.Equal(t, "https://example.com/p/42/", out.Purge.Result(0).URL.String())

	j.Ban = "\\.css$"
	_, err := j.Run(context.Background())
	assert.ErrorContains(t, err, `ban expression "\\.css$" has no literal path prefix`)
	assert.Len(t, in.requests(), 1, "nothing sent")
	j.Broad = true
	require.True(t, run(t, j).OK())
	assert.Equal(t, "/", in.requests()[1].RequestURI)

	j.Ban, j.Broad = "", true
	_, err = j.Run(context.Background())
	assert.ErrorContains(t, err, "broad applies to a ban")

	// varnish/toolbox bans on PURGEDIR.
	j = job([]string{"https://example.com/"}, in.addr)
	j.Ban, j.Method = "^/p/", "purgedir"
	require.True(t, run(t, j).OK())
	assert.Equal(t, "PURGEDIR", in.requests()[2].Method)
	assert.Equal(t, "/p/", in.requests()[2].RequestURI)
}

var _ = sha256.Size

// at is the result of URL u on the instance at addr.
func at(rep *Report, u int, addr string) Result {
	for i, in := range rep.Instances {
		if in.String() == addr {
			return rep.Result(rep.Index(u, i))
		}
	}
	panic("no instance " + addr)
}

// byInstance is the first result of rep on the instance at addr.
func byInstance(rep *Report, addr string) Result {
	for k := range rep.Len() {
		if r := rep.Result(k); r.Instance.String() == addr {
			return r
		}
	}
	panic("no result for " + addr)
}

// A body longer than what is hashed cannot be compared by content: said,
// not guessed.
func TestVerifyCurrentBodyTooLarge(t *testing.T) {
	big := strings.Repeat("x", maxHashBody+1)
	serve := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit")
		_, _ = w.Write([]byte(big))
	}
	o, in := startInstance(t, "127.0.0.1", serve), startInstance(t, "127.0.0.1", serve)
	j := check([]string{"https://example.com/video"}, ExpectCurrent, in.addr)
	j.Origin, j.Timeout = "http://"+o.addr, 10*time.Second
	c := run(t, j).Verify[0].Result(0)
	assert.False(t, c.OK)
	assert.Nil(t, c.Current)
	assert.Contains(t, errText(c), "larger than 16 MiB")
}
