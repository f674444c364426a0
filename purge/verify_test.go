package purge

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

func headerInstance(t *testing.T, name, value string) *instance {
	return startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if name != "" {
			w.Header().Set(name, value)
		}
		w.Header().Set("Age", "12")
	})
}

func TestVerifyEachHeaderForm(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		class       cachestatus.Class
	}{
		{"Cache-Status", "varnish-1; hit; ttl=100", cachestatus.Hit},
		{"Cache-Status", "varnish-1; hit; ttl=-5", cachestatus.Stale},
		{"Cache-Status", "varnish-1; fwd=miss; stored", cachestatus.Miss},
		{"Cache-Status", "varnish-1; fwd=bypass", cachestatus.Bypass},
		{"Cache-Status", "region=iad; origin=app,app.origin.local; ttl=10.000; storage=memory; hit; hits=3", cachestatus.Hit},
		{"Cache-Status", "region=iad; ttl=-1.000; storage=memory; hit; stale; hits=3", cachestatus.Stale},
		{"Cache-Status", "region=iad; storage=memory; miss; hits=0", cachestatus.Miss},
		{"X-Cache", "HIT", cachestatus.Hit},
		{"X-Cache", "HIT, MISS", cachestatus.Miss},
		{"Cache-Status", "((( not a header", cachestatus.Unknown},
		{"", "", cachestatus.Unknown},
	} {
		in := headerInstance(t, tc.name, tc.value)
		rep, err := Verify(context.Background(), fastOpts(), ExpectHit, []Instance{in.inst}, mustURLs(t, "https://example.com/feed"))
		require.NoError(t, err)
		c := rep.Checks[0]
		assert.Equal(t, tc.class, c.Class, tc.value)
		assert.Equal(t, tc.class.IsHit(), c.Matched, tc.value)
		assert.Equal(t, tc.value, c.CacheStatus)
		assert.Equal(t, "12", c.Age)
		assert.Equal(t, 200, c.Status)
		r := in.requests()[0]
		assert.Equal(t, "HEAD", r.Method)
		assert.Equal(t, "example.com", r.Host)
		if tc.name == "" {
			assert.Contains(t, c.Error, "no Cache-Status or X-Cache header")
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
	assert.ErrorContains(t, err, "use hit, fresh, stale, miss or any")
}

func TestVerifyStaleInstanceFailsFresh(t *testing.T) {
	fresh := headerInstance(t, "Cache-Status", "c; hit; ttl=50")
	stale := headerInstance(t, "Cache-Status", "c; hit; ttl=-50")
	rep, err := Verify(context.Background(), fastOpts(), ExpectFresh, []Instance{fresh.inst, stale.inst}, mustURLs(t, "https://example.com/"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	require.Len(t, rep.Unmatched(), 1)
	assert.Equal(t, stale.inst.String(), rep.Unmatched()[0].Instance)
	assert.Contains(t, rep.Summary(), "FAILED: verified 1 URL on 1/2 instances: expected fresh")
	var buf bytes.Buffer
	require.NoError(t, rep.Write(&buf, FormatText))
	assert.Contains(t, buf.String(), "FAILED: stale, expected fresh")
	assert.Contains(t, buf.String(), "c; hit; ttl=-50")
}

func TestVerifyUntilWarms(t *testing.T) {
	var n atomic.Int64
	warming := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.Header().Set("Cache-Status", "c; fwd=miss; stored")
		} else {
			w.Header().Set("Cache-Status", "c; hit; ttl=10")
		}
	})
	warm := headerInstance(t, "Cache-Status", "c; hit")
	rep, err := VerifyUntil(context.Background(), fastOpts(), ExpectHit, []Instance{warming.inst, warm.inst}, mustURLs(t, "https://example.com/"), 5*time.Second, 10*time.Millisecond)
	require.NoError(t, err)
	assert.True(t, rep.OK(), rep.Summary())
	assert.Equal(t, 3, rep.Rounds)
	assert.Len(t, warm.requests(), 1, "a matched instance is not asked again")
}

func TestVerifyUntilNeverWarmsTimesOut(t *testing.T) {
	cold := headerInstance(t, "Cache-Status", "c; fwd=miss")
	warm := headerInstance(t, "Cache-Status", "c; hit")
	rep, err := VerifyUntil(context.Background(), fastOpts(), ExpectHit, []Instance{cold.inst, warm.inst}, mustURLs(t, "https://example.com/"), 200*time.Millisecond, 20*time.Millisecond)
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.Greater(t, rep.Rounds, 2)
	assert.Equal(t, cold.inst.String(), rep.Unmatched()[0].Instance)
	assert.Equal(t, cachestatus.Miss, rep.Unmatched()[0].Class)
	assert.GreaterOrEqual(t, len(cold.requests()), 3)
}

func TestVerifyVariantSelectedByHeader(t *testing.T) {
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Cache-Status", "c; hit")
		} else {
			w.Header().Set("Cache-Status", "c; fwd=vary-miss")
		}
	})
	o := fastOpts()
	rep, err := Verify(context.Background(), o, ExpectHit, []Instance{in.inst}, mustURLs(t, "https://example.com/"))
	require.NoError(t, err)
	assert.False(t, rep.OK())
	o.Header = http.Header{"Accept-Encoding": {"gzip"}}
	rep, err = Verify(context.Background(), o, ExpectHit, []Instance{in.inst}, mustURLs(t, "https://example.com/"))
	require.NoError(t, err)
	assert.True(t, rep.OK())
}

func TestVerifyGETReadsLittleOfALargeBody(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 10<<20)
	in := startInstance(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "c; hit")
		_, _ = w.Write(big)
	})
	o := fastOpts()
	o.Method = "GET"
	rep, err := Verify(context.Background(), o, ExpectHit, []Instance{in.inst}, mustURLs(t, "https://example.com/episode.mp3", "https://example.com/episode2.mp3"))
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())
	for _, c := range rep.Checks {
		assert.Less(t, c.BytesRead, int64(16<<10), "read %d bytes of a 10 MiB body", c.BytesRead)
		assert.Positive(t, c.BytesRead)
	}
	assert.Equal(t, "GET", in.requests()[0].Method)
}

func TestVerifyDoesNotSendToken(t *testing.T) {
	in := headerInstance(t, "Cache-Status", "c; hit")
	o := fastOpts()
	o.Token = "tok"
	_, err := Verify(context.Background(), o, ExpectHit, []Instance{in.inst}, mustURLs(t, "https://example.com/"))
	require.NoError(t, err)
	assert.Empty(t, in.requests()[0].Token)
}

func TestVerifyReportJSON(t *testing.T) {
	in := headerInstance(t, "Cache-Status", "c; hit; ttl=7")
	rep, err := Verify(context.Background(), fastOpts(), ExpectMiss, []Instance{in.inst}, mustURLs(t, "https://example.com/"))
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, rep.Write(&buf, FormatJSON))
	var got struct {
		OK     bool   `json:"ok"`
		Expect string `json:"expect"`
		Checks []struct {
			Class       string   `json:"class"`
			CacheStatus string   `json:"cache_status"`
			TTL         *float64 `json:"ttl"`
			Matched     bool     `json:"matched"`
			BytesRead   int64    `json:"bytes_read"`
		} `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
	assert.False(t, got.OK)
	assert.Equal(t, "miss", got.Expect)
	require.Len(t, got.Checks, 1)
	assert.Equal(t, "hit", got.Checks[0].Class)
	assert.Equal(t, 7.0, *got.Checks[0].TTL)
	assert.Positive(t, got.Checks[0].BytesRead)

	buf.Reset()
	require.NoError(t, rep.Write(&buf, FormatMarkdown))
	assert.True(t, strings.HasPrefix(buf.String(), "### cdnpurge verify: expect miss"))
}

func TestVerifyHEADKeepsConnectionsAlive(t *testing.T) {
	in := headerInstance(t, "Cache-Status", "c; hit")
	var raw []string
	for i := 0; i < 50; i++ {
		raw = append(raw, "https://example.com/p"+strings.Repeat("x", i))
	}
	o := fastOpts()
	o.PerInstance = 1
	rep, err := Verify(context.Background(), o, ExpectHit, []Instance{in.inst}, mustURLs(t, raw...))
	require.NoError(t, err)
	require.True(t, rep.OK())
	assert.Equal(t, int64(1), in.conns.Load())
}
