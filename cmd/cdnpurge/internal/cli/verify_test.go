package cli

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/purge/report/reporttest"
)

// cacheFleet behaves like a tiny cache per instance: HEAD/GET miss and store,
// then hit; PURGE drops the URL, except on instances listed in broken, which
// answer 200 and keep serving hits.
func cacheFleet(t *testing.T, n int, broken map[int]bool) *httpFleet {
	var mu sync.Mutex
	cached := map[string]bool{}
	var f *httpFleet
	f = startFleet(t, n, func(addr string, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		key := addr + " " + r.Host + r.RequestURI
		switch r.Method {
		case "PURGE":
			idx := -1
			for i, a := range f.addrs {
				if a == addr {
					idx = i
				}
			}
			if !broken[idx] {
				delete(cached, key)
			}
		default:
			if cached[key] {
				w.Header().Set("Cache-Status", "test-"+addr+"; hit; ttl=60")
			} else {
				w.Header().Set("Cache-Status", "test-"+addr+"; fwd=miss; stored")
				cached[key] = true
			}
		}
	})
	return f
}

func TestVerifyCommand(t *testing.T) {
	f := cacheFleet(t, 3, nil)
	args := append([]string{"verify", "--url", "https://example.com/feed", "--expect", "hit"}, f.args()...)
	r := run(t, nil, "", args...)
	assert.Equal(t, ExitFailed, r.code, "cold caches miss")
	assert.Contains(t, r.stdout, "FAILED: verified 1 URL on 0/3 instances: expected hit")
	assert.Contains(t, r.stdout, "fwd=miss; stored")

	r = run(t, nil, "", args...)
	assert.Equal(t, ExitOK, r.code, r.stdout)
	assert.Contains(t, r.stdout, "verified 1 URL on 3/3 instances: expected hit")

	// A waiting hit check never counts the copy its own first request
	// stored (that round missed): nothing says a browser's would hit.
	r = run(t, nil, "", append([]string{"verify", "--url", "https://example.com/other", "--expect", "hit", "--wait", "450ms", "--interval", "100ms"}, f.args()...)...)
	assert.Equal(t, ExitFailed, r.code, r.stdout)
	assert.Contains(t, r.stdout, "hit on the copy this check's own request stored in round 1 (a miss then), not a browser's: not counted")
	// Warmed by another run (as a browser would), the next run's hits count.
	r = run(t, nil, "", append([]string{"verify", "--url", "https://example.com/other", "--expect", "hit", "--wait", "5s", "--interval", "100ms"}, f.args()...)...)
	assert.Equal(t, ExitOK, r.code, r.stdout)
}

func TestVerifyCommandUsage(t *testing.T) {
	f := cacheFleet(t, 1, nil)
	for _, tc := range []struct{ flag, want string }{
		{"--expect=warm", "--expect=warm: use current, hit, fresh, stale, miss or any\n"},
		{"--expect=purged", "needs a purge in the same run"},
		{"--method=POST", "HEAD or GET"},
		{"--interval=0s", "--interval 0s: give a positive duration"},
		{"--wait=1s --interval=50ms", "at least 100ms"},
	} {
		r := run(t, nil, "", append(append([]string{"verify", "--url", "https://e.com/"}, strings.Fields(tc.flag)...), f.args()...)...)
		assert.Equal(t, ExitUsage, r.code, tc.flag)
		assert.Contains(t, r.stderr, tc.want, tc.flag)
	}
	r := run(t, nil, "", "verify", "--help")
	assert.Equal(t, ExitOK, r.code)
	for _, s := range []string{"--expect", "--wait", "--interval", "--method", "--header", "--origin", "--cache-header", "--ok-status"} {
		assert.Contains(t, r.stdout, s)
	}
	for _, tc := range []struct{ args, want string }{
		{"--expect current", "expect current: needs the origin's address to compare with"},
		{"--origin ftp://x", `origin "ftp://x": give the origin's base URL`},
		{"--cache-header a:b", `cache header "a:b": not a valid header name`},
	} {
		r := run(t, nil, "", append(append([]string{"verify", "--url", "https://e.com/"}, strings.Fields(tc.args)...), f.args()...)...)
		assert.Equal(t, ExitUsage, r.code, tc.args)
		assert.Contains(t, r.stderr, tc.want, tc.args)
		assert.Empty(t, f.requests(f.addrs[0]), "nothing sent")
	}
	r = run(t, nil, "", append([]string{"verify", "--url", "https://e.com/", "--origin", "http://127.0.0.1:1"}, f.args()...)...)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "origin http://127.0.0.1:1: https://e.com/: ")
	assert.Contains(t, r.stderr, "hint: check --origin")
	assert.Empty(t, f.requests(f.addrs[0]), "nothing sent")
}

func TestBanRefusesARegexWithoutALiteralPrefix(t *testing.T) {
	f := cacheFleet(t, 1, nil)
	r := run(t, nil, "", append([]string{"ban", "--url", "https://e.com/", "--regex", `\.css$`}, f.args()...)...)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "has no literal path prefix")
	assert.Empty(t, f.requests(f.addrs[0]), "nothing sent")
	r = run(t, nil, "", append([]string{"ban", "--url", "https://e.com/", "--regex", `\.css$`, "--broad"}, f.args()...)...)
	assert.Equal(t, ExitOK, r.code, r.stderr)
	r = run(t, nil, "", append([]string{"ban", "--url", "https://e.com/", "--regex", `^/p/42/`, "--method", "PURGEDIR"}, f.args()...)...)
	assert.Equal(t, ExitOK, r.code, r.stderr)
	reqs := f.requests(f.addrs[0])
	require.Len(t, reqs, 2)
	assert.Equal(t, "BAN", reqs[0].Method)
	assert.Equal(t, "/", reqs[0].RequestURI)
	assert.Equal(t, "PURGEDIR", reqs[1].Method)
	assert.Equal(t, "/p/42/", reqs[1].RequestURI)
	assert.Equal(t, "^/p/42/", reqs[1].Header.Get("X-Url"))
}

func TestPurgeVerifyMissThenHit(t *testing.T) {
	f := cacheFleet(t, 3, nil)
	warm := append([]string{"verify", "--url", "https://example.com/ep/1", "--expect", "any"}, f.args()...)
	require.Equal(t, ExitOK, run(t, nil, "", warm...).code)

	r := run(t, nil, "", append([]string{"purge", "--url", "https://example.com/ep/1", "--verify=miss,hit", "--format", "json"}, f.args()...)...)
	require.Equal(t, ExitOK, r.code, r.stdout+r.stderr)
	out := reporttest.Require(t, r.stdout)
	assert.True(t, out.Purge().OK)
	verify := out.Verify()
	require.Len(t, verify, 2)
	assert.Equal(t, "miss", verify[0].Expect)
	assert.Equal(t, "hit", verify[1].Expect)
	for i, v := range verify {
		assert.True(t, v.OK)
		require.Len(t, v.Results, 3)
		for _, c := range v.Results {
			assert.Equal(t, v.Expect, c.Class, "step %d", i)
		}
	}
}

func TestPurgeVerifyCatchesInstanceStillServingHit(t *testing.T) {
	f := cacheFleet(t, 3, map[int]bool{2: true})
	warm := append([]string{"verify", "--url", "https://example.com/ep/2", "--expect", "any"}, f.args()...)
	require.Equal(t, ExitOK, run(t, nil, "", warm...).code)

	r := run(t, nil, "", append([]string{"purge", "--url", "https://example.com/ep/2", "--verify"}, f.args()...)...)
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.stdout, "purged 1 URL on 3/3 instances", "every PURGE answered 200")
	assert.Contains(t, r.stdout, "FAILED: verified 1 URL on 2/3 instances: expected purged")
	assert.Contains(t, r.stderr, "cdnpurge purge: FAILED: verify purged: 1 of 3 checks did not match on 1 of 3 instances")
	// The failed row names its instance and header; its reason, too long
	// for the column, follows the table.
	var line, note string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, "FAILED [1]") {
			line = l
		}
		if strings.HasPrefix(l, "[1] ") {
			note = l
		}
	}
	require.NotEmpty(t, line, r.stdout)
	assert.Contains(t, line, f.addrs[2])
	assert.Contains(t, line, "test-"+f.addrs[2]+"; hit; ttl=60")
	assert.Contains(t, note, "[1] hit, expected purged", r.stdout)
}

func TestVerifyWaitTimesOutWithExit1(t *testing.T) {
	f := startFleet(t, 2, func(addr string, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Status", "never-warm; fwd=miss")
	})
	r := run(t, nil, "", append([]string{"verify", "--url", "https://example.com/cold", "--expect", "hit", "--wait", "350ms", "--interval", "100ms"}, f.args()...)...)
	assert.Equal(t, ExitFailed, r.code, r.stdout)
	assert.Contains(t, r.stdout, "FAILED: verified 1 URL on 0/2 instances: expected hit")
	assert.Contains(t, r.stdout, "rounds")
	assert.Contains(t, r.stdout, "never-warm; fwd=miss")
	assert.GreaterOrEqual(t, len(f.requests(f.addrs[0])), 3, "asked again each interval")
}

// What the serve's API does not carry is refused with --via, before
// anything is sent.
func TestViaRefusesWhatItCannotCarry(t *testing.T) {
	for _, args := range [][]string{
		{"purge", "--url", "https://e.com/", "--verify", "--origin", "http://o.example"},
		{"purge", "--url", "https://e.com/", "--verify", "--accept-uncertain"},
		{"ban", "--url", "https://e.com/", "--regex", `\.css$`, "--broad"},
		{"ban", "--url", "https://e.com/", "--regex", "^/p/", "--method", "PURGEDIR"},
		{"verify", "--url", "https://e.com/", "--origin", "http://o.example"},
		{"verify", "--url", "https://e.com/", "--cache-header", "X-App-Cache"},
	} {
		r := run(t, nil, "", append(args, "--via", "http://127.0.0.1:1")...)
		assert.Equal(t, ExitUsage, r.code, "%v", args)
		assert.Contains(t, r.stderr, "--via", "%v", args)
	}
}
