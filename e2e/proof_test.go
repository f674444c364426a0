package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
)

// Verify proves instead of infers: each finding of the issue that asked for
// it, on real varnishd, in the style of the configuration it was found with.
// The scenarios that need a style's fleet run under TestStyles (see
// styles()); these need a fleet of their own or none.

// finding1BanHandedToTheApp: WordPress's VCL hands a BAN to WordPress,
// which answers 200 and bans nothing (the BAN step says so now: the answer
// is the page, fetched from the backend). The copies were stored just
// before: Age says 0 or 1, which a refill after the ban could say too.
// That is not proof: the check fails ("cannot tell"), and never says
// "refilled" (it used to pass them as refilled).
func finding1BanHandedToTheApp(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/f1/page")
	require.NoError(t, visit(f, u))
	r := runCLI(t, s.token, append([]string{"ban", "--url", styleURL(s, "/"), "--regex", "^/f1/", "--verify", "--verify-url", u, "--format", "json"}, f.Args()...)...)
	require.Equal(t, 1, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	for _, res := range o.Purge.Results {
		assert.Equal(t, 200, res.Status, "WordPress answered 200 to every BAN")
	}
	require.Len(t, o.Verify, 1)
	for _, c := range o.Verify[0].Results {
		assert.False(t, c.OK, "%+v", c)
		assert.False(t, c.Refilled, "never 'refilled': %+v", c)
		assert.True(t, c.Uncertain || c.PredatesPurge, "%+v", c)
	}
	assert.Contains(t, r.stderr, "hint: --origin URL compares content and settles it")
	assert.Equal(t, len(f.Members), originHits(t, f, u), "nothing was banned")

	// With the origin's content, the same copies are what the origin
	// serves: the ban changed nothing there, and the check by content
	// passes them (they are current), which is the truth about them.
	r = runCLI(t, s.token, append([]string{"ban", "--url", styleURL(s, "/"), "--regex", "^/f1/", "--verify", "--verify-url", u,
		"--origin", "http://" + f.Origin.Addr, "--format", "json"}, f.Args()...)...)
	require.Equal(t, 1, r.code, "the BAN step failed: %s", r)
	decodeJSON(t, r.stdout, &o)
	assert.True(t, o.Verify[0].OK, o.Verify[0].Summary)
	for _, c := range o.Verify[0].Results {
		require.NotNil(t, c.Current, "%+v", c)
		assert.True(t, *c.Current)
	}
}

// finding1Hostile: an instance answers 200 to PURGE, purges nothing, and
// serves its copy with two X-Varnish ids and Age 0: not proof.
func finding1Hostile(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/f1/hostile")
	require.NoError(t, visit(f, u))
	j := job(f, u)
	j.Verify = []purge.Expect{purge.ExpectPurged}
	out := run(t, j)
	assert.True(t, out.Purge.OK(), "every PURGE answered 200")
	for _, c := range results(out.Verify[0]) {
		assert.False(t, c.OK, "%s: %v", c.Instance, c.Err)
		assert.Equal(t, cachestatus.Hit, c.Class)
		assert.LessOrEqual(t, c.Age, 1)
		assert.ErrorIs(t, c.Err, purge.ErrUncertain)
	}
}

// finding2SoftPurgeNotFresh: Shopware's soft-purge variant expires tagged
// objects; with only Age to go by, the copy served next is a hit, and
// nothing says whether it is fresh: --expect fresh fails and says why
// (it used to pass). The copy really was stale: serving it made each
// instance fetch a fresh one in the background.
func TestFinding2SoftPurgeNotFresh(t *testing.T) {
	t.Parallel()
	s := style{name: "shopware", xkey: true}
	tmpl := readStyle(t, s.name)
	// What the image's entrypoint does when SHOPWARE_SOFT_PURGE is set.
	tmpl = strings.ReplaceAll(tmpl, "xkey.purge", "xkey.softpurge")
	f := startStyleTemplate(t, s, tmpl)
	u := styleURL(s, "/f2/product?xkey=product-42")
	require.NoError(t, visit(f, u))
	waitAge(t, f, u, 1)
	r := runCLI(t, "", append([]string{"purge", "--url", styleURL(s, "/"), "--header", "xkey: product-42"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "200")
	before := originHits(t, f, u)

	r = runCLI(t, "", append([]string{"verify", "--url", u, "--expect", "fresh", "--format", "json"}, f.Args()...)...)
	require.Equal(t, 1, r.code, r)
	var v verifyJSON
	decodeJSON(t, r.stdout, &v)
	for _, c := range v.Results {
		assert.Equal(t, "hit", c.Class, "%+v", c)
		assert.Equal(t, "age", c.Source)
		assert.True(t, c.StaleUnknown)
		assert.Contains(t, c.Error, "cannot tell fresh from stale: the instance sends no cache header")
	}
	assert.Contains(t, r.stderr, "hint: without a cache header, expect hit")
	waitOriginHits(t, f, u, before+len(f.Members))
}

// finding3StoredMissHeader: Shopware's VCL removes X-Varnish; the origin's
// "X-Cache: MISS" is stored with the object and delivered on every hit,
// with Age 9999 (the origin is a cache). A purge of another URL must not
// verify this copy as purged: Age says it predates the purge.
func finding3StoredMissHeader(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/f3/page?hdr=X-Cache:MISS&age=9999")
	require.NoError(t, visit(f, u))
	r := runCLI(t, s.token, append([]string{"purge", "--url", styleURL(s, "/f3/other"), "--verify", "--verify-url", u, "--format", "json"}, f.Args()...)...)
	require.Equal(t, 1, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	for _, c := range o.Verify[0].Results {
		assert.False(t, c.OK)
		assert.Equal(t, "hit", c.Class, "%+v", c)
		assert.Equal(t, "MISS", c.CacheStatus)
		assert.Contains(t, c.Note, "says miss, but there is no X-Varnish and Age")
		assert.True(t, c.PredatesPurge)
		assert.Contains(t, c.Error, "older than the purge")
	}
}

// magento: Magento removes X-Varnish and Age, and says what it did in
// X-Magento-Cache-Debug (finding 4); a purge is a ban by tag pattern.
func magento(t *testing.T, s style, f *fleet.Fleet) {
	p42 := styleURL(s, "/f4/p42.html?hdr=X-Magento-Tags:cat_p,cat_p_42")
	p43 := styleURL(s, "/f4/p43.html?hdr=X-Magento-Tags:cat_p,cat_p_43")
	us := []string{p42, p43}
	verify(t, f, purge.ExpectAny, us)
	r := runCLI(t, "", append([]string{"verify", "--url", p42, "--url", p43, "--expect", "fresh", "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var v verifyJSON
	decodeJSON(t, r.stdout, &v)
	for _, c := range v.Results {
		assert.Equal(t, "hit", c.Class)
		assert.Equal(t, "x-magento-cache-debug", c.Source)
		assert.Nil(t, c.Age, "Magento removes Age")
	}
	// PURGE without a pattern: 400, with Magento's reason.
	r = runCLI(t, "", append([]string{"purge", "--url", p42}, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stdout, "X-Magento-Tags-Pattern or X-Pool header required")
	// The way Magento purges: a tag pattern, and the pages it should drop.
	r = runCLI(t, "", append([]string{"purge", "--url", styleURL(s, "/"), "--header", "X-Magento-Tags-Pattern: ((^|,)cat_p_42(,|$))",
		"--verify-url", p42, "--verify"}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
	requireAll(t, verify(t, f, purge.ExpectHit, []string{p43}), cachestatus.Hit)
	assert.Equal(t, len(f.Members), originHits(t, f, p43), "the other product was kept")
}

// finding5BansNoWider: a ban of ^/p/42/ on the VCLs that take the ban from
// the request path (Shopware's BAN, varnish/toolbox's PURGEDIR) bans
// /p/42/... and nothing else: it used to send BAN / and empty the caches.
func finding5BansNoWider(method string, extra ...string) func(t *testing.T, s style, f *fleet.Fleet) {
	return func(t *testing.T, s style, f *fleet.Fleet) {
		banned := styleURL(s, "/f5/p/42/detail")
		kept := []string{styleURL(s, "/f5/p/43/detail"), styleURL(s, "/f5/")}
		all := append([]string{banned}, kept...)
		for _, u := range all {
			require.NoError(t, visit(f, u))
		}
		args := append([]string{"ban", "--url", styleURL(s, "/"), "--regex", "^/f5/p/42/", "--method", method,
			"--verify", "--verify-url", banned, "--origin", "http://" + f.Origin.Addr, "--format", "json"}, extra...)
		r := runCLI(t, s.cliToken(), append(args, f.Args()...)...)
		require.Equal(t, 0, r.code, r)
		var o outcomeJSON
		decodeJSON(t, r.stdout, &o)
		require.NotEmpty(t, o.Purge.URLs)
		assert.Equal(t, styleURL(s, "/f5/p/42/"), o.Purge.URLs[0], "the request path is the regex's literal prefix")
		assert.Equal(t, 2*len(f.Members)+2, originHits(t, f, banned), "banned on every instance (and read twice from the origin)")
		for _, u := range kept {
			assert.Equal(t, len(f.Members), originHits(t, f, u), "%s was kept", u)
		}
		// A regex with no literal prefix would ban everything there.
		r = runCLI(t, s.cliToken(), append(append([]string{"ban", "--url", styleURL(s, "/"), "--regex", `\.css$`, "--method", method}, extra...), f.Args()...)...)
		assert.Equal(t, 2, r.code, r)
		assert.Contains(t, r.stderr, "has no literal path prefix")
		assert.Empty(t, r.stdout, "nothing sent")
		for _, u := range kept {
			assert.Equal(t, len(f.Members), originHits(t, f, u), "%s was kept", u)
		}
	}
}

// finding6SoftPurge: after --soft, each instance serves the old copy once
// as stale and fetches a fresh one: --verify passes with copies older than
// a few seconds (it used to fail them as "stale, expected purged").
func finding6SoftPurge(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/f6/soft")
	require.NoError(t, visit(f, u))
	waitAge(t, f, u, 3)
	r := runCLI(t, s.token, append(append([]string{"purge", "--url", u, "--soft", "--verify", "--format", "json"}, proofArgs(s, f)...), f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	for _, res := range o.Purge.Results {
		require.NotNil(t, res.Objects)
		assert.Equal(t, 1, *res.Objects, "one object expired")
	}
	assert.GreaterOrEqual(t, o.Verify[0].Rounds, 2, "the stale copy, then the fresh one")
	for _, c := range o.Verify[0].Results {
		assert.True(t, c.OK, "%+v", c)
		assert.True(t, c.Refilled, "%+v", c)
	}
	assert.Equal(t, 2*len(f.Members), originHits(t, f, u), "each instance fetched a fresh copy once")
}

// finding6SoftPurgeIgnored: an instance that ignores the soft purge still
// serves the old copy as fresh: --soft --verify fails and says so.
func finding6SoftPurgeIgnored(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/f6/ignored")
	require.NoError(t, visit(f, u))
	waitAge(t, f, u, 2)
	r := runCLI(t, s.token, append([]string{"purge", "--url", u, "--soft", "--verify"}, f.Args()...)...)
	require.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stdout, "still serves the old copy as fresh")
	assert.Contains(t, r.stdout, "the soft purge did not expire it")
}

// finding7FetchInFlight: an origin slow to answer; a visitor's request is
// being fetched when a deploy lands and the purge arrives. varnishd does
// not purge an object still being fetched, so the old content survives,
// stored just after the purge (Age 0). The shipped VCL's clock says the
// fetch began before the purge: verify fails, says why, and a second purge
// clears it.
func finding7FetchInFlight(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/f7/page?slow=3s")
	pu, err := purge.ParseURL(u)
	require.NoError(t, err)
	cli(t) // built before the race begins
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, m := range f.Members { // a visitor on every instance, while the purge happens
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := get(t, m.Instance.String(), u, map[string]string{"Accept-Encoding": purge.DefaultVerifyAcceptEncoding})
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		}()
	}
	waitOriginHits(t, f, u, len(f.Members)) // every fetch has begun
	_, err = f.Origin.Deploy(context.Background(), pu.Host)
	require.NoError(t, err)
	r := runCLI(t, s.token, append([]string{"purge", "--url", u, "--verify", "--timeout", "10s", "--format", "json"}, f.Args()...)...)
	require.Equal(t, 1, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	for _, res := range o.Purge.Results {
		assert.True(t, res.OK)
		require.NotNil(t, res.Objects)
		assert.Equal(t, 0, *res.Objects, "the object being fetched is not purged")
		assert.Positive(t, res.PurgedAt)
	}
	for _, c := range o.Verify[0].Results {
		assert.False(t, c.OK, "%+v", c)
		assert.True(t, c.PredatesPurge, "%+v", c)
		assert.Less(t, c.FetchedAt, o.Purge.Results[0].PurgedAt+1, "%+v", c)
		assert.Contains(t, c.Error, "before the purge, on the instance's own clock: a fetch in flight during the purge survives it; purge again")
		assert.False(t, c.Refilled, "never 'refilled after the purge'")
	}
	assert.Contains(t, r.stderr, "hint: purge again")
	wg.Wait()
	// The content says the same: it is the version before the deploy.
	r = runCLI(t, "", append([]string{"verify", "--url", u, "--expect", "current", "--origin", "http://" + f.Origin.Addr, "--timeout", "10s"}, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stdout, "serving another version than the origin")
	// Purged again, with nothing in flight: current everywhere.
	r = runCLI(t, s.token, append([]string{"purge", "--url", u, "--verify", "--timeout", "10s", "--origin", "http://" + f.Origin.Addr}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
}

// finding8UpstreamAge: the origin is itself a cache (it sends Age: 100); a
// copy refilled after the purge is 100 s old by Age, and was fetched after
// the purge by the instance's clock: it passes (it used to fail as "101s
// old, older than the purge").
func finding8UpstreamAge(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/f8/page?age=100")
	require.NoError(t, visit(f, u))
	j := job(f, u)
	j.Token, j.Verify = s.token, []purge.Expect{purge.ExpectPurged}
	var once sync.Once
	var refillErr error
	j.Progress = func(p purge.Progress) {
		if p.Step == string(purge.StepPurge) && p.Done == p.Total {
			once.Do(func() { refillErr = visit(f, u) })
		}
	}
	out := run(t, j)
	require.NoError(t, refillErr)
	assert.True(t, out.OK(), "%v", out.Err())
	for _, c := range results(out.Verify[0]) {
		assert.True(t, c.OK, "%s: %v", c.Instance, c.Err)
		assert.True(t, c.Refilled)
		assert.GreaterOrEqual(t, c.Age, 100, "Age includes the upstream's")
		assert.False(t, c.FetchedAt.IsZero())
	}
}

// finding9Variants: verify asks as a browser, so a browser's request right
// after a warm check is a hit; a warm check does not count the copy its own
// first request stored; and Vary on a header verify sent one value of is
// reported, with the warning that other variants were not checked.
func finding9Variants(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/f9/page?vary=User-Agent")
	r := runCLI(t, "", append([]string{"verify", "--url", u, "--expect", "hit", "--wait", "2s", "--interval", "200ms", "--format", "json"}, f.Args()...)...)
	require.Equal(t, 1, r.code, r)
	var v verifyJSON
	decodeJSON(t, r.stdout, &v)
	assert.GreaterOrEqual(t, v.Rounds, 2)
	for _, c := range v.Results {
		assert.True(t, c.SelfStored, "%+v", c)
		assert.Equal(t, "Accept-Encoding, User-Agent", c.Vary)
	}
	require.Len(t, v.RequestHeaders, 2)
	assert.Equal(t, "Accept-Encoding: "+purge.DefaultVerifyAcceptEncoding, v.RequestHeaders[0])
	require.Len(t, v.Warnings, 1)
	assert.Contains(t, v.Warnings[0], "Vary: User-Agent on")
	assert.Contains(t, v.Warnings[0], "copies for other values of User-Agent were not checked")
	assert.Contains(t, r.stdout, "Vary: User-Agent on", "in the JSON")
	text := runCLI(t, "", append([]string{"verify", "--url", u, "--expect", "any"}, f.Args()...)...)
	assert.Contains(t, text.stdout, "warning: Vary: User-Agent on")

	// Varied on Accept-Encoding only: the copy verify's request stored is
	// the one a browser gets (the VCL keeps br, gzip and identity).
	w := styleURL(s, "/f9/encoded")
	verify(t, f, purge.ExpectAny, []string{w})
	for _, m := range f.Members {
		resp := get(t, m.Instance.String(), w, map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd", "User-Agent": "Mozilla/5.0 Safari/605.1.15"})
		assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit;", "a browser's request is a hit")
	}
	// A browser with another User-Agent misses the other URL's copy:
	// what the warning says.
	for _, m := range f.Members {
		resp := get(t, m.Instance.String(), u, map[string]string{"Accept-Encoding": purge.DefaultVerifyAcceptEncoding, "User-Agent": "Mozilla/5.0 Safari/605.1.15"})
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=miss")
	}
}

// finding10CachedStatus: a cached 404, 301 or 302 is a hit; --expect hit
// passes, shows the status and warns, unless --ok-status expects it.
func finding10CachedStatus(t *testing.T, s style, f *fleet.Fleet) {
	gone, moved, found := styleURL(s, "/f10/gone?status=404"), styleURL(s, "/f10/moved?status=301"), styleURL(s, "/f10/found?status=302")
	us := []string{gone, moved, found}
	verify(t, f, purge.ExpectAny, us)
	args := append([]string{"verify", "--url", gone, "--url", moved, "--url", found, "--expect", "hit"}, f.Args()...)
	r := runCLI(t, "", append(args, "--format", "json")...)
	require.Equal(t, 0, r.code, r)
	var v verifyJSON
	decodeJSON(t, r.stdout, &v)
	statuses := map[string]int{}
	for _, c := range v.Results {
		assert.Equal(t, "hit", c.Class)
		statuses[c.URL] = c.Status
	}
	assert.Equal(t, map[string]int{gone: 404, moved: 301, found: 302}, statuses)
	require.Len(t, v.Warnings, 3, "%q", v.Warnings)
	assert.Contains(t, v.Warnings[0], "served a cached 301 Moved Permanently")
	assert.Contains(t, v.Warnings[1], "served a cached 302 Found")
	assert.Contains(t, v.Warnings[2], "served a cached 404 Not Found")
	text := runCLI(t, "", args...)
	assert.Contains(t, text.stdout, "warning: "+fmt.Sprint(len(f.Members))+" checks served a cached 404 Not Found")
	r = runCLI(t, "", append(append([]string{"verify", "--url", gone, "--expect", "hit", "--ok-status", "404"}, f.Args()...), "--format", "json")...)
	require.Equal(t, 0, r.code, r)
	var expected verifyJSON
	decodeJSON(t, r.stdout, &expected)
	assert.Empty(t, expected.Warnings, "404 is expected")
}

// TestFinding11WaitMemoryIsFlat: verify --wait against instances that never
// warm keeps only the last round: the heap does not grow round after round
// (each round's errors used to be kept). The figure for 500 URLs x 50
// instances over 2 minutes is ci/verify-memory.sh's.
func TestFinding11WaitMemoryIsFlat(t *testing.T) {
	f, _ := shared(t)
	var urls []string
	host := site(t)
	for i := range 300 {
		urls = append(urls, fmt.Sprintf("%s/private/never-warm/%d", host, i))
	}
	// Twelve rounds, however long they take: the run is stopped then.
	const rounds = 12
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	j := job(f, urls...)
	j.VerifyOnly, j.Verify = true, []purge.Expect{purge.ExpectHit}
	j.Wait, j.Interval = time.Hour, purge.MinInterval
	var heap []uint64
	j.Progress = func(p purge.Progress) {
		if p.Done == p.Total && len(heap) < rounds {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if heap = append(heap, m.HeapAlloc); len(heap) == rounds {
				cancel()
			}
		}
	}
	out, err := j.Run(ctx)
	require.NoError(t, err)
	rep := out.Verify[0]
	assert.False(t, rep.OK())
	require.Len(t, heap, rounds)
	grew := int64(heap[rounds-1]) - int64(heap[2])
	t.Logf("%d rounds of %d checks: heap after round 3 %d KiB, after round %d %d KiB", rep.Rounds, rep.Len(), heap[2]>>10, rounds, heap[rounds-1]>>10)
	// Each round's failures are about 200 KiB here; flat means well under
	// one round's worth over all the rounds after the third.
	assert.Less(t, grew, int64(400<<10), "the heap grew %d KiB from round 3 to round %d", grew>>10, rounds)
	for _, c := range results(rep) {
		assert.Equal(t, cachestatus.Miss, c.Class, "%s: a private page is never stored", c.URL)
	}
}

// TestProofByContent: the origin's content changes with a deploy; one
// instance is left unpurged: verify --expect current names it, and once it
// is purged, every instance is current.
func TestProofByContent(t *testing.T) {
	f, tok := shared(t)
	host := site(t)
	us := []string{host + "/deploys/page", host + "/deploys/other?validators=none"}
	pu, err := purge.ParseURL(us[0])
	require.NoError(t, err)
	verify(t, f, purge.ExpectAny, us)
	origin := "http://" + f.Origin.Addr
	args := func(extra ...string) []string {
		a := []string{"verify", "--origin", origin, "--expect", "current", "--format", "json"}
		for _, u := range us {
			a = append(a, "--url", u)
		}
		return append(append(a, extra...), f.Args()...)
	}
	r := runCLI(t, "", args()...)
	require.Equal(t, 0, r.code, "before the deploy, every copy is current: %s", r)

	_, err = f.Origin.Deploy(context.Background(), pu.Host)
	require.NoError(t, err)
	left := f.Members[len(f.Members)-1].Instance.String()
	purgeArgs := []string{"purge", "--url", us[0], "--url", us[1], "--verify", "--origin", origin, "--format", "json"}
	for _, m := range f.Members[:len(f.Members)-1] {
		purgeArgs = append(purgeArgs, "--instance", m.Instance.String())
	}
	r = runCLI(t, tok, purgeArgs...)
	require.Equal(t, 0, r.code, "the purged instances serve the new version: %s", r)

	r = runCLI(t, "", args()...)
	require.Equal(t, 1, r.code, r)
	var v verifyJSON
	decodeJSON(t, r.stdout, &v)
	for _, c := range v.Results {
		require.NotNil(t, c.Current, "%+v", c)
		assert.Equal(t, c.Instance != left, *c.Current, "%+v", c)
	}
	text := runCLI(t, "", append(args(), "--format", "text")...)
	assert.Contains(t, text.stdout, "serving another version than the origin: "+left)

	// Purged everywhere, and waited for: current, with each instance's
	// time and the fleet's.
	r = runCLI(t, tok, append([]string{"purge", "--url", us[0], "--url", us[1], "--verify", "--origin", origin}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	r = runCLI(t, "", args("--wait", "5s", "--interval", "100ms")...)
	require.Equal(t, 0, r.code, r)
	decodeJSON(t, r.stdout, &v)
	for _, c := range v.Results {
		require.NotNil(t, c.Current)
		assert.True(t, *c.Current)
	}
	assert.Contains(t, v.Summary, "every instance matched after")
}

// TestOriginThatCannotBeRead: exit 2, nothing sent.
func TestOriginThatCannotBeRead(t *testing.T) {
	f, tok := shared(t)
	u := site(t) + "/origin-down"
	r := runCLI(t, tok, append([]string{"purge", "--url", u, "--verify", "--origin", "http://127.0.0.1:1"}, f.Args()...)...)
	assert.Equal(t, 2, r.code, r)
	assert.Contains(t, r.stderr, "connection refused")
	assert.Equal(t, 0, originHits(t, f, u), "nothing was sent")
}

// TestObjectCounts: the shipped VCL says how many objects each purge
// removed; when no instance removed any, every format warns.
func TestObjectCounts(t *testing.T) {
	f, tok := shared(t)
	cached, never := site(t)+"/counts/cached", site(t)+"/counts/never"
	verify(t, f, purge.ExpectAny, []string{cached}, "Accept-Encoding: gzip")
	verify(t, f, purge.ExpectAny, []string{cached})
	r := runCLI(t, tok, append([]string{"purge", "--url", cached, "--url", never, "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var p purgeJSON
	decodeJSON(t, r.stdout, &p)
	for _, res := range p.Results {
		require.NotNil(t, res.Objects, "%+v", res)
		want := 0
		if res.URL == cached {
			want = 2 // two variants
		}
		assert.Equal(t, want, *res.Objects, res.URL)
	}
	warning := "0 objects purged on any instance for " + never + ": was anything cached under this host and path?"
	assert.Equal(t, []string{warning}, p.Warnings)
	for _, format := range []string{"text", "markdown"} {
		r = runCLI(t, tok, append([]string{"purge", "--url", never, "--format", format}, f.Args()...)...)
		require.Equal(t, 0, r.code, r)
		assert.Contains(t, strings.NewReplacer("\\", "").Replace(r.stdout), "warning: "+warning, format)
	}
}

// tagCounts: vmod xkey's counts, per instance.
func tagCounts(t *testing.T, s style, f *fleet.Fleet) {
	tagged := []string{styleURL(s, "/counts/1?xkey=count-a"), styleURL(s, "/counts/2?xkey=count-a,count-b")}
	verify(t, f, purge.ExpectAny, tagged)
	r := runCLI(t, s.token, append([]string{"purge", "--url", styleURL(s, "/"), "--tag", "count-a", "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var p purgeJSON
	decodeJSON(t, r.stdout, &p)
	for _, res := range p.Results {
		require.NotNil(t, res.Objects)
		assert.Equal(t, 2, *res.Objects)
	}
	assert.Empty(t, p.Warnings)
	r = runCLI(t, s.token, append([]string{"purge", "--url", styleURL(s, "/"), "--tag", "count-nothing", "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	decodeJSON(t, r.stdout, &p)
	assert.Equal(t, []string{"0 objects purged on any instance for " + styleURL(s, "/") + ": was anything cached under these tags (count-nothing)?"}, p.Warnings)
}

// apiPlatform: API Platform bans by cache tags with a BAN carrying
// ApiPlatform-Ban-Regex; a PURGE reaches the API, which refuses it.
func apiPlatform(t *testing.T, s style, f *fleet.Fleet) {
	book1 := styleURL(s, "/api/books/1?hdr=Cache-Tags:/api/books/1,/api/authors/3")
	book2 := styleURL(s, "/api/books/2?hdr=Cache-Tags:/api/books/2")
	verify(t, f, purge.ExpectAny, []string{book1, book2})
	r := runCLI(t, "", append([]string{"purge", "--url", book1}, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stdout, "405")
	assert.Contains(t, r.stdout, "the instance's configuration refused the PURGE")
	r = runCLI(t, "", append([]string{"purge", "--method", "BAN", "--url", styleURL(s, "/"), "--header", "ApiPlatform-Ban-Regex: (^|,)/api/books/1($|,)",
		"--verify", "--verify-url", book1, "--origin", "http://" + f.Origin.Addr}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
	requireAll(t, verify(t, f, purge.ExpectHit, []string{book2}), cachestatus.Hit)
	assert.Equal(t, len(f.Members), originHits(t, f, book2), "the other book was kept")
}

// wordpressPurge: the plugin's PURGE of one page, and of a path regex.
func wordpressPurge(t *testing.T, s style, f *fleet.Fleet) {
	post, other := styleURL(s, "/2024/hello/"), styleURL(s, "/2023/old/")
	verify(t, f, purge.ExpectAny, []string{post, other})
	r := runCLI(t, "", append([]string{"purge", "--url", styleURL(s, "/2024/.*"), "--header", "X-Purge-Method: regex",
		"--verify", "--verify-url", post, "--origin", "http://" + f.Origin.Addr}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
	requireAll(t, verify(t, f, purge.ExpectHit, []string{other}), cachestatus.Hit)
	assert.Equal(t, len(f.Members), originHits(t, f, other), "another year was kept")
}

// shopwareTags: Shopware purges tags with a PURGE carrying xkey.
func shopwareTags(t *testing.T, s style, f *fleet.Fleet) {
	p := styleURL(s, "/tags/p42?xkey=product-42")
	q := styleURL(s, "/tags/p43?xkey=product-43")
	require.NoError(t, visit(f, p))
	require.NoError(t, visit(f, q))
	r := runCLI(t, "", append([]string{"purge", "--url", styleURL(s, "/"), "--header", "xkey: product-42",
		"--verify", "--verify-url", p, "--origin", "http://" + f.Origin.Addr}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
	assert.Equal(t, len(f.Members), originHits(t, f, q), "the other product was kept")
}

// toolboxPurge: varnish/toolbox purges one URL with PURGEONE and a bearer
// token, and refuses a wrong one.
func toolboxPurge(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/one/page")
	require.NoError(t, visit(f, u))
	bad := runCLI(t, "Bearer wrong", append([]string{"purge", "--url", u, "--method", "PURGEONE", "--token-header", "Authorization"}, f.Args()...)...)
	assert.Equal(t, 1, bad.code, bad)
	assert.Contains(t, bad.stdout, "Unauthorized request")
	assert.NotContains(t, bad.stdout+bad.stderr, "wrong", "the token is never shown")
	r := runCLI(t, "Bearer "+s.token, append([]string{"purge", "--url", u, "--method", "PURGEONE", "--token-header", "Authorization",
		"--verify", "--verify-url", u, "--origin", "http://" + f.Origin.Addr}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
	assert.Equal(t, 2*len(f.Members)+2, originHits(t, f, u), "purged everywhere (and read twice from the origin)")
}

// get asks the instance at addr for u with the given headers.
func get(t *testing.T, addr, u string, header map[string]string) *http.Response {
	t.Helper()
	pu, err := purge.ParseURL(u)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+pu.Target, nil)
	require.NoError(t, err)
	req.Host = pu.Host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := visitor()
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// waitOriginHits polls until the origin was asked for u at least n times.
func waitOriginHits(t *testing.T, f *fleet.Fleet, u string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for originHits(t, f, u) < n {
		require.False(t, time.Now().After(deadline), "the origin was asked for %s %d times, not %d", u, originHits(t, f, u), n)
		time.Sleep(20 * time.Millisecond) // polling a counter, with a deadline
	}
}

// readStyle reads style name's template.
func readStyle(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "varnish", "testdata", "styles", name+".vcl"))
	require.NoError(t, err)
	return string(b)
}
