package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/cachestatus"
	"github.com/cdnpurge/cdnpurge/varnish"
)

// Verification must tell the truth on the VCLs people run, not only on the
// shipped one: each style of varnish/testdata/styles runs in real varnishd
// (a fleet of 2 per style), and the scenarios its header comment says it
// supports are checked against it.

// style is a VCL and what it supports, as its header comment documents.
type style struct {
	name   string // the file in varnish/testdata/styles, without .vcl; "shipped" is cdnpurge's own VCL
	token  string // the purge token it checks, if any
	bearer bool   // the token goes as "Authorization: Bearer TOKEN"
	noAge  bool   // its responses carry no Age
	xkey   bool   // needs vmod xkey
	purges bool   // handles PURGE of one URL
	stale  bool   // its evidence tells a hit in grace from a fresh one
	path   string // the path prefix of its URLs (passthrough: where the origin sends another CDN's headers)
	// source is what verify reads a hit from, missSource a miss (when
	// another header than source).
	source, missSource string
	// more are the scenarios only this style has.
	more []scenario
}

// scenario is one check against a style's running fleet.
type scenario struct {
	name string
	run  func(t *testing.T, s style, f *fleet.Fleet)
}

// styleGrace is the grace of styles that read it: an object with the
// origin's ?max-age=1 is then stale from 1 s to 1+styleGrace s.
const styleGrace = 5 * time.Second

func styles() []style {
	return []style{
		{name: "shipped", token: token, purges: true, stale: true, source: "cache-status", more: []scenario{
			{"ban-verify-needs-urls", banVerifyNeedsURLs},
			{"ban", banShipped},
			{"tags-without-xkey", tagsWithoutXkey},
			{"soft", softPurge},
			{"finding6-soft-purge-verified", finding6SoftPurge},
			{"finding7-fetch-in-flight", finding7FetchInFlight},
			{"finding8-upstream-age", finding8UpstreamAge},
			{"finding9-variants", finding9Variants},
			{"finding10-cached-status", finding10CachedStatus},
		}},
		{name: "shipped-xkey", token: token, xkey: true, purges: true, stale: true, source: "cache-status", more: []scenario{
			{"tags", tagPurge(purge.DefaultTagMethod)},
			{"tags-purge-method", tagPurge(purge.DefaultMethod)},
			{"tags-soft", tagSoftPurge},
			{"tag-counts", tagCounts},
		}},
		{name: "fos", xkey: true, purges: true, source: "x-cache", more: []scenario{
			{"tags", tagPurge(purge.DefaultTagMethod)},
			{"tags-purge-method-caught", fosTagsWithPurgeCaught},
			{"ban", banFOS},
			{"ban-without-content-type", banFOSWithoutContentType},
		}},
		{name: "kube-httpcache", purges: true, source: "x-varnish", more: []scenario{
			{"ban-exact-url-caught", banIgnoredCaught},
		}},
		{name: "users-guide", purges: true, source: "x-varnish", more: []scenario{
			{"ban-piped-caught", banIgnoredCaught},
		}},
		{name: "vmod-purge-404", purges: true, source: "x-varnish", more: []scenario{
			{"purge-uncached-404", purge404},
		}},
		{name: "xcache", purges: true, stale: true, source: "x-cache"},
		{name: "nopurge", stale: true, source: "x-cache", more: []scenario{
			{"purge-served-from-cache", purgeServedFromCache},
			{"purge-answered-as-miss", purgeAnsweredAsMiss},
		}},
		{name: "passthrough", purges: true, path: "/cdn-headers", source: "x-varnish", missSource: "cache-status", more: []scenario{
			{"other-cdn-headers", otherCDNHeaders},
		}},
		{name: "pipely", token: token, purges: true, stale: true, source: "cache-status (pipely)", more: []scenario{
			{"token", pipelyToken},
		}},
		{name: "magento2", noAge: true, stale: true, source: "x-magento-cache-debug", more: []scenario{
			{"finding4-tag-purge", magento},
		}},
		{name: "wordpress", purges: true, source: "x-varnish", more: []scenario{
			{"finding1-ban-handed-to-the-app", finding1BanHandedToTheApp},
			{"purge-regex", wordpressPurge},
		}},
		{name: "shopware", xkey: true, source: "age", more: []scenario{
			{"finding3-stored-miss-header", finding3StoredMissHeader},
			{"finding5-ban-no-wider", finding5BansNoWider("BAN")},
			{"tags", shopwareTags},
		}},
		{name: "api-platform", source: "x-varnish", more: []scenario{
			{"ban-by-tags", apiPlatform},
		}},
		{name: "toolbox", token: token, bearer: true, source: "x-varnish", more: []scenario{
			{"finding5-purgedir-no-wider", finding5BansNoWider("PURGEDIR", "--token-header", "Authorization")},
			{"purgeone", toolboxPurge},
		}},
		{name: "fakepurge", stale: true, source: "x-cache", more: []scenario{
			{"finding1-hostile", finding1Hostile},
			{"finding6-soft-ignored", finding6SoftPurgeIgnored},
		}},
	}
}

// cliToken is the token as the CLI sends it (PURGE_TOKEN).
func (s style) cliToken() string {
	if s.bearer && s.token != "" {
		return "Bearer " + s.token
	}
	return s.token
}

// TestStyles runs every style's scenarios, each style on its own fleet.
func TestStyles(t *testing.T) {
	for _, s := range styles() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			f := startStyle(t, s)
			t.Run("warm-hit", func(t *testing.T) { warmHit(t, s, f) })
			if s.purges {
				t.Run("purge-miss-refill-hit", func(t *testing.T) { purgeMissRefillHit(t, s, f) })
				t.Run("live-traffic", func(t *testing.T) { liveTraffic(t, s, f) })
				t.Run("live-traffic-refilled", func(t *testing.T) { liveTrafficRefilled(t, s, f) })
			}
			if s.stale {
				t.Run("stale", func(t *testing.T) { staleInGrace(t, s, f) })
			}
			for _, sc := range s.more {
				t.Run(sc.name, func(t *testing.T) { sc.run(t, s, f) })
			}
		})
	}
}

// startStyle starts a fleet of 2 running the style's VCL.
func startStyle(t *testing.T, s style) *fleet.Fleet {
	t.Helper()
	// The shipped template is given explicitly, so that the fleet runs here
	// even when the environment names external instances.
	tmpl := varnish.VCLTemplate()
	if !strings.HasPrefix(s.name, "shipped") {
		tmpl = readStyle(t, s.name)
	}
	return startStyleTemplate(t, s, tmpl)
}

// startStyleTemplate starts a fleet of 2 running tmpl, with the style's
// token and vmods.
func startStyleTemplate(t *testing.T, s style, tmpl string) *fleet.Fleet {
	t.Helper()
	if s.xkey {
		fleettest.NeedXkey(t)
	}
	mode, err := fleet.ParseMode(os.Getenv("CDNPURGE_E2E_MODE"))
	require.NoError(t, err)
	if mode == fleet.ModeExternal {
		mode = fleet.ModeLoopback // a style needs its own VCL
	}
	return fleettest.Start(t, fleet.Options{N: 2, Mode: mode, Template: tmpl, Token: s.token, Xkey: s.xkey, Grace: styleGrace})
}

// tellsStale says whether the style's evidence tells a fresh hit from a
// stale one: a cache header does; X-Varnish and Age alone do not.
func (s style) tellsStale() bool { return s.source != "x-varnish" && s.source != "age" }

// clocked says whether the style's VCL says, on the instance's own clock,
// when it purged and when a copy's fetch began (the shipped one does).
func (s style) clocked() bool { return strings.HasPrefix(s.name, "shipped") }

// proofArgs are the flags with which a purge's --verify can prove the
// purge under live traffic: the instance's own clock where the VCL gives
// it, else the origin's content (Age alone cannot order a copy refilled
// within a second of the purge).
func proofArgs(s style, f *fleet.Fleet) []string {
	if s.clocked() {
		return nil
	}
	return []string{"--origin", "http://" + f.Origin.Addr}
}

// styleURL is a URL of the style's site; rest starts with "/".
func styleURL(s style, rest string) string {
	return "https://" + s.name + ".example" + s.path + rest
}

// checkSource checks that every check of rep read its class from the
// style's evidence.
func checkSource(t *testing.T, s style, rep *purge.Report) {
	t.Helper()
	for _, c := range results(rep) {
		want := s.source
		if !c.Class.IsHit() && s.missSource != "" {
			want = s.missSource
		}
		assert.Equal(t, want, c.Source, "%s on %s: %s %q (%s)", c.URL, c.Instance, c.Class, c.CacheStatus, c.Note)
	}
}

// warmHit: a URL asked for once is then a hit on every instance.
func warmHit(t *testing.T, s style, f *fleet.Fleet) {
	us := []string{styleURL(s, "/warm")}
	miss := verify(t, f, purge.ExpectMiss, us)
	if s.source == "age" {
		// Age alone: a miss says Age 0, as a hit in the same second does.
		assert.False(t, miss.OK(), miss.Summary())
		requireAll(t, miss, cachestatus.Unknown)
		waitAge(t, f, us[0], 1)
	} else {
		assert.True(t, miss.OK(), miss.Summary())
		checkSource(t, s, miss)
	}
	r := runCLI(t, "", append([]string{"verify", "--url", us[0], "--expect", "hit"}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
	if !s.tellsStale() {
		// X-Varnish and Age say hit, not whether it is fresh: fresh
		// cannot be claimed, and the check says why.
		fresh := verify(t, f, purge.ExpectFresh, us)
		assert.False(t, fresh.OK(), fresh.Summary())
		for _, c := range results(fresh) {
			assert.True(t, c.StaleUnknown)
			assert.ErrorIs(t, c.Err, purge.ErrStaleUnknown)
		}
	}
	expect := purge.ExpectFresh
	if !s.tellsStale() {
		expect = purge.ExpectHit
	}
	hit := verify(t, f, expect, us)
	assert.True(t, hit.OK(), hit.Summary())
	requireAll(t, hit, cachestatus.Hit)
	checkSource(t, s, hit)
	for _, c := range results(hit) {
		if s.noAge {
			assert.Equal(t, -1, c.Age, "no Age")
		} else {
			assert.GreaterOrEqual(t, c.Age, 0, "a hit carries Age")
		}
	}
	assert.Equal(t, len(f.Members), originHits(t, f, us[0]), "each instance fetched once")
}

// purgeMissRefillHit: after a purge every instance misses, then hits again.
func purgeMissRefillHit(t *testing.T, s style, f *fleet.Fleet) {
	us := []string{styleURL(s, "/purged")}
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)

	rep := purgeURLs(t, f, s.token, us...)
	require.True(t, rep.OK(), rep.Summary())
	miss := verify(t, f, purge.ExpectMiss, us)
	assert.True(t, miss.OK(), miss.Summary())
	requireAll(t, miss, cachestatus.Miss)
	checkSource(t, s, miss)
	hit := verify(t, f, purge.ExpectHit, us)
	assert.True(t, hit.OK(), hit.Summary())
	requireAll(t, hit, cachestatus.Hit)
	checkSource(t, s, hit)
	assert.Equal(t, 2*len(f.Members), originHits(t, f, us[0]), "each instance fetched once more after the purge")
}

// staleInGrace: past its TTL, within grace, every instance serves the copy
// stale, and verify says so.
func staleInGrace(t *testing.T, s style, f *fleet.Fleet) {
	us := []string{styleURL(s, "/stale?max-age=1")}
	verify(t, f, purge.ExpectAny, us)
	j := job(f, us...)
	j.VerifyOnly, j.Verify = true, []purge.Expect{purge.ExpectStale}
	// Asked again every interval until the 1 s TTL has run out everywhere.
	j.Wait, j.Interval = styleGrace-time.Second, purge.MinInterval
	out := run(t, j)
	rep := out.Verify[0]
	assert.True(t, rep.OK(), rep.Summary())
	requireAll(t, rep, cachestatus.Stale)
	checkSource(t, s, rep)
	for _, c := range results(rep) {
		if c.TTL != nil {
			assert.Negative(t, *c.TTL, "a stale copy's ttl is past: %q", c.CacheStatus)
		}
		if s.name == "xcache" || s.name == "nopurge" {
			assert.True(t, strings.HasPrefix(c.CacheStatus, "hit graced"), c.CacheStatus)
		}
	}
}

// liveTraffic: while visitors keep asking every instance for the URL, a
// purge with the default --verify passes: each instance misses, or serves a
// copy stored after the purge began (refilled).
func liveTraffic(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/live")
	stop := traffic(t, f, u)
	defer stop()
	r := runCLI(t, s.token, append(append([]string{"purge", "--url", u, "--verify", "--format", "json"}, proofArgs(s, f)...), f.Args()...)...)
	served := stop()
	require.Equal(t, 0, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	assert.True(t, o.OK, o.Summary)
	require.NotNil(t, o.Purge)
	assert.True(t, o.Purge.OK, o.Purge.Summary)
	require.Len(t, o.Verify, 1)
	assert.Equal(t, string(purge.ExpectPurged), o.Verify[0].Expect)
	refilled := 0
	for _, c := range o.Verify[0].Results {
		assert.True(t, c.OK, "%+v", c)
		switch c.Class {
		case "hit", "stale":
			// Without the instance's clock, a copy refilled in the second
			// of the purge cannot be told refilled: it passes as current.
			assert.True(t, c.Refilled || !s.clocked() && c.Current != nil && *c.Current, "a hit passes only as refilled or current: %+v", c)
			if c.Refilled {
				refilled++
			}
		default:
			assert.Equal(t, "miss", c.Class, "%+v", c)
			assert.False(t, c.Refilled)
		}
		if s.clocked() {
			assert.Positive(t, c.FetchedAt, "the instance's clock orders the copy: %+v", c)
		} else {
			require.NotNil(t, c.Current, "the origin's content proves the copy: %+v", c)
			assert.True(t, *c.Current)
		}
	}
	if refilled > 0 {
		assert.Contains(t, o.Verify[0].Summary, fmt.Sprintf("%d refilled by traffic after the purge", refilled))
	}
	t.Logf("%d visitor requests; %d of %d instances refilled before verify asked", served, refilled, len(f.Members))
}

// liveTrafficRefilled: the same, with the refill made certain: every
// instance is asked for the URL between the purge and the verify step (in
// the job's progress callback, which runs when the purge step ends), so
// every check is a refilled hit, and passes.
func liveTrafficRefilled(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/refilled")
	us := []string{u}
	verify(t, f, purge.ExpectAny, us)
	requireAll(t, verify(t, f, purge.ExpectHit, us), cachestatus.Hit)
	j := job(f, us...)
	j.Token, j.Verify = s.token, []purge.Expect{purge.ExpectPurged}
	if !s.clocked() {
		j.Origin = "http://" + f.Origin.Addr
	}
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
	rep := out.Verify[0]
	for _, c := range results(rep) {
		assert.True(t, c.OK, "%s: %v", c.Instance, c.Err)
		assert.True(t, c.Class.IsHit(), "%s: %s", c.Instance, c.Class)
		if s.clocked() {
			assert.True(t, c.Refilled, "the instance's clock says the copy was fetched after the purge: %s", c.Instance)
		} else {
			require.NotNil(t, c.Current, "%s: %s", c.Instance, c.Note)
			assert.True(t, *c.Current, "the origin's content proves the copy: %s", c.Instance)
		}
	}
	if s.clocked() {
		assert.Equal(t, len(f.Members), rep.Refilled(), rep.Summary())
		assert.Contains(t, rep.Summary(), fmt.Sprintf("%d refilled by traffic after the purge", len(f.Members)))
	}
	reads := 0
	if j.Origin != "" {
		reads = 2 // verify read the origin's version twice, before the purge
	}
	assert.Equal(t, 2*len(f.Members)+reads, originHits(t, f, u), "the purge really dropped every copy")
}

// visitor is an HTTP client that asks as a browser does, for the variant
// verify asks for: Go's client would otherwise send its own
// Accept-Encoding (the origin varies on it). browse sets the headers.
func visitor() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
}

// browse makes req a browser's request.
func browse(req *http.Request) {
	req.Header.Set("Accept-Encoding", purge.DefaultVerifyAcceptEncoding)
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
}

// visit asks every instance of f for u once, as a browser.
func visit(f *fleet.Fleet, u string) error { return visitAs(f, u, browse) }

// visitPlain asks every instance of f for u once, with no Accept-Encoding:
// the variant a PURGE request would hit.
func visitPlain(f *fleet.Fleet, u string) error { return visitAs(f, u, func(*http.Request) {}) }

// visitAs asks every instance of f for u once, with the headers as sets
// them.
func visitAs(f *fleet.Fleet, u string, as func(*http.Request)) error {
	pu, err := purge.ParseURL(u)
	if err != nil {
		return err
	}
	c := visitor()
	defer c.CloseIdleConnections()
	for _, m := range f.Members {
		req, err := http.NewRequest(http.MethodGet, "http://"+m.Instance.String()+pu.Target, nil)
		if err != nil {
			return err
		}
		req.Host = pu.Host
		as(req)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", m.Instance, resp.Status)
		}
	}
	return nil
}

// traffic asks every instance of f for u in a loop, two visitors each,
// until stop is called; stop returns how many answers came. It returns once
// every instance has answered at least once.
func traffic(t *testing.T, f *fleet.Fleet, u string) (stop func() int) {
	t.Helper()
	pu, err := purge.ParseURL(u)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	client := visitor()
	counts := make([]atomic.Int64, len(f.Members))
	var wg sync.WaitGroup
	for i, m := range f.Members {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Instance.String()+pu.Target, nil)
					req.Host = pu.Host
					browse(req)
					resp, err := client.Do(req)
					if err != nil {
						select { // do not spin on a failing instance
						case <-ctx.Done():
						case <-time.After(10 * time.Millisecond):
						}
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					counts[i].Add(1)
				}
			}()
		}
	}
	var once sync.Once
	total := 0
	stop = func() int {
		once.Do(func() {
			cancel()
			wg.Wait()
			client.CloseIdleConnections()
			for i := range counts {
				total += int(counts[i].Load())
			}
		})
		return total
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := range counts {
		for counts[i].Load() == 0 {
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("instance %s never answered the visitors", f.Members[i].Instance)
			}
			time.Sleep(5 * time.Millisecond) // polling a counter, with a deadline
		}
	}
	return stop
}

// banVerifyNeedsURLs: verifying a ban through the URL that only carries the
// Host proves nothing: the CLI refuses it before sending anything.
func banVerifyNeedsURLs(t *testing.T, s style, f *fleet.Fleet) {
	r := runCLI(t, s.token, append([]string{"ban", "--url", styleURL(s, "/"), "--regex", "^/assets/", "--verify"}, f.Args()...)...)
	assert.Equal(t, 2, r.code, r)
	assert.Contains(t, r.stderr, "give the URLs to verify")
	assert.Empty(t, r.stdout, "nothing was sent")
}

// banShipped: a BAN of ^/assets/ drops every asset of the host and keeps
// its other pages and the other hosts' assets.
func banShipped(t *testing.T, s style, f *fleet.Fleet) {
	assets := []string{styleURL(s, "/assets/app.css"), styleURL(s, "/assets/app.js")}
	home := styleURL(s, "/")
	other := "https://other-" + s.name + ".example/assets/app.css"
	all := append([]string{home, other}, assets...)
	verify(t, f, purge.ExpectAny, all)
	requireAll(t, verify(t, f, purge.ExpectHit, all), cachestatus.Hit)

	args := []string{"ban", "--url", home, "--regex", "^/assets/", "--verify=miss", "--format", "json"}
	for _, a := range assets {
		args = append(args, "--verify-url", a)
	}
	r := runCLI(t, s.token, append(args, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	assert.Equal(t, "BAN", o.Purge.Method)
	assert.Len(t, o.Verify[0].Results, len(assets)*len(f.Members))

	for _, u := range []string{home, other} {
		r = runCLI(t, "", append([]string{"verify", "--url", u, "--expect", "hit"}, f.Args()...)...)
		assert.Equal(t, 0, r.code, "%s is kept: %s", u, r)
		assert.Equal(t, len(f.Members), originHits(t, f, u), "%s never fetched again", u)
	}
}

// banFOS: FOSHttpCache's BAN matches X-Host, X-Url and X-Content-Type;
// with a content type given, cdnpurge's ban drops the host's assets there
// too and keeps its other pages.
func banFOS(t *testing.T, s style, f *fleet.Fleet) {
	assets := []string{styleURL(s, "/assets/app.css"), styleURL(s, "/assets/app.js")}
	home := styleURL(s, "/")
	all := append([]string{home}, assets...)
	verify(t, f, purge.ExpectAny, all)
	requireAll(t, verify(t, f, purge.ExpectHit, all), cachestatus.Hit)

	args := []string{"ban", "--url", home, "--regex", "^/assets/", "--content-type", ".", "--verify=miss"}
	for _, a := range assets {
		args = append(args, "--verify-url", a)
	}
	r := runCLI(t, s.token, append(args, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	requireAll(t, verify(t, f, purge.ExpectHit, []string{home}), cachestatus.Hit)
	assert.Equal(t, len(f.Members), originHits(t, f, home), "the home page was kept")
}

// banFOSWithoutContentType: FOSHttpCache's VCL builds its ban from all
// three headers, and with X-Content-Type missing the expression does not
// parse: nothing is banned, and it answers 200 "Banned" all the same. So a
// ban without --content-type must still send one (any type), and its
// verify must show the copies gone.
func banFOSWithoutContentType(t *testing.T, s style, f *fleet.Fleet) {
	asset := styleURL(s, "/nocontenttype/app.css")
	verify(t, f, purge.ExpectAny, []string{asset})
	requireAll(t, verify(t, f, purge.ExpectHit, []string{asset}), cachestatus.Hit)

	r := runCLI(t, s.token, append([]string{"ban", "--url", styleURL(s, "/"), "--regex", "^/nocontenttype/", "--verify=miss", "--verify-url", asset, "--format", "json"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	require.NotNil(t, o.Purge)
	assert.True(t, o.Purge.OK, o.Purge.Summary)
	assert.True(t, o.Verify[0].OK, o.Verify[0].Summary)
	assert.Equal(t, 2*len(f.Members), originHits(t, f, asset), "every instance fetched the asset again: it was banned")
}

// banIgnoredCaught: a VCL that answers a BAN with 200 and bans nothing
// (the users guide's, which pipes BAN to the origin; kube-httpcache's, whose
// X-Url is an exact URL, not a regular expression): the BAN step can only
// say it was sent, and its verify must fail.
func banIgnoredCaught(t *testing.T, s style, f *fleet.Fleet) {
	asset := styleURL(s, "/caught/app.css")
	verify(t, f, purge.ExpectAny, []string{asset})
	r := runCLI(t, s.token, append([]string{"ban", "--url", styleURL(s, "/"), "--regex", "^/caught/", "--verify=miss", "--verify-url", asset, "--format", "json"}, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	require.NotNil(t, o.Purge)
	assert.True(t, o.Purge.OK, "every instance answered 200")
	assert.Contains(t, o.Purge.Summary, "sent BAN for 1 URL")
	require.Len(t, o.Verify, 1)
	for _, c := range o.Verify[0].Results {
		assert.Equal(t, "hit", c.Class, "%+v", c)
		assert.False(t, c.OK)
	}
	assert.Contains(t, r.stderr, "verify miss")
	assert.Equal(t, len(f.Members), originHits(t, f, asset), "nothing was banned")
}

// tagsWithoutXkey: the shipped VCL rendered without xkey refuses a tag
// purge loudly (501) instead of purging one URL.
func tagsWithoutXkey(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/tagged?xkey=red")
	verify(t, f, purge.ExpectAny, []string{u})
	r := runCLI(t, s.token, append([]string{"purge", "--url", styleURL(s, "/"), "--tag", "red", "--format", "json"}, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	var p purgeJSON
	decodeJSON(t, r.stdout, &p)
	for _, res := range p.Results {
		assert.Equal(t, 501, res.Status)
		assert.Contains(t, res.Error, "vmod xkey")
	}
	requireAll(t, verify(t, f, purge.ExpectHit, []string{u}), cachestatus.Hit)
}

// softPurge: --soft on the shipped VCL: stale once, then fresh.
func softPurge(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/soft")
	verify(t, f, purge.ExpectAny, []string{u})
	r := runCLI(t, s.token, append([]string{"purge", "--url", u, "--soft", "--verify=stale"}, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	r = runCLI(t, "", append([]string{"verify", "--url", u, "--expect", "fresh", "--wait", "10s", "--interval", "100ms"}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
}

// tagURLs are objects the origin tags with their ?xkey= list, under
// /name/: a purge of tag must drop exactly tagged, and keep others.
func tagURLs(s style, name string) (tag string, tagged, others []string) {
	tag = "blue-" + name
	tagged = []string{styleURL(s, "/"+name+"/1?xkey=red-"+name+","+tag), styleURL(s, "/"+name+"/2?xkey="+tag)}
	others = []string{styleURL(s, "/"+name+"/3?xkey=green-"+name), styleURL(s, "/"+name+"/4")}
	return tag, tagged, others
}

// tagPurge: --tag drops every object tagged with it, on every instance, and
// only those.
func tagPurge(method string) func(t *testing.T, s style, f *fleet.Fleet) {
	return func(t *testing.T, s style, f *fleet.Fleet) {
		tag, blue, others := tagURLs(s, strings.ToLower(method))
		all := append(append([]string{}, blue...), others...)
		verify(t, f, purge.ExpectAny, all)
		requireAll(t, verify(t, f, purge.ExpectHit, all), cachestatus.Hit)

		args := []string{"purge", "--url", styleURL(s, "/"), "--tag", tag, "--method", method, "--verify=miss", "--format", "json"}
		for _, u := range blue {
			args = append(args, "--verify-url", u)
		}
		r := runCLI(t, s.token, append(args, f.Args()...)...)
		require.Equal(t, 0, r.code, r)
		var o outcomeJSON
		decodeJSON(t, r.stdout, &o)
		assert.Equal(t, method, o.Purge.Method)
		assert.Len(t, o.Verify[0].Results, len(blue)*len(f.Members))

		rep := verify(t, f, purge.ExpectHit, others)
		assert.True(t, rep.OK(), rep.Summary())
		for _, u := range others {
			assert.Equal(t, len(f.Members), originHits(t, f, u), "%s was never fetched again", u)
		}
	}
}

// tagSoftPurge: --tag --soft expires the tagged objects: each instance
// serves them stale once, and keeps the others fresh.
func tagSoftPurge(t *testing.T, s style, f *fleet.Fleet) {
	tag, blue, others := tagURLs(s, "soft")
	all := append(append([]string{}, blue...), others...)
	verify(t, f, purge.ExpectAny, all)
	args := []string{"purge", "--url", styleURL(s, "/"), "--tag", tag, "--soft", "--verify=stale"}
	for _, u := range blue {
		args = append(args, "--verify-url", u)
	}
	r := runCLI(t, s.token, append(args, f.Args()...)...)
	require.Equal(t, 0, r.code, r)
	rep := verify(t, f, purge.ExpectFresh, others)
	assert.True(t, rep.OK(), rep.Summary())
}

// fosTagsWithPurgeCaught: FOSHttpCache's VCL takes tags on PURGEKEYS only; a
// PURGE carrying xkey-purge purges just its URL and answers 200. The purge
// "succeeds", and verify must catch that the tagged objects are still there.
func fosTagsWithPurgeCaught(t *testing.T, s style, f *fleet.Fleet) {
	tag, blue, _ := tagURLs(s, "caught")
	verify(t, f, purge.ExpectAny, blue)
	args := []string{"purge", "--url", styleURL(s, "/"), "--tag", tag, "--method", "PURGE", "--verify=miss", "--format", "json"}
	for _, u := range blue {
		args = append(args, "--verify-url", u)
	}
	r := runCLI(t, s.token, append(args, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	assert.True(t, o.Purge.OK, "every instance answered 200 to the PURGE")
	assert.False(t, o.Verify[0].OK)
	for _, c := range o.Verify[0].Results {
		assert.Equal(t, "hit", c.Class, "%+v", c)
		assert.False(t, c.OK)
	}
}

// purge404: vmod purge's manual VCL answers 404 when nothing was cached:
// a failure with the explanation, unless 404 is accepted.
func purge404(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/never-cached")
	r := runCLI(t, s.token, append([]string{"purge", "--url", u, "--format", "json"}, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	var p purgeJSON
	decodeJSON(t, r.stdout, &p)
	require.Len(t, p.Results, len(f.Members))
	for _, res := range p.Results {
		assert.Equal(t, 404, res.Status)
		assert.Contains(t, res.Error, "the instance found nothing to purge there")
	}
	assert.Contains(t, r.stderr, "--ok-status 404")

	r = runCLI(t, s.token, append([]string{"purge", "--url", u, "--ok-status", "404", "--verify=miss"}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
}

// purgeServedFromCache: a VCL that does not handle PURGE answers it as a
// cache hit; the purge fails and says why, and nothing was purged.
func purgeServedFromCache(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/not-purged")
	// The variant a PURGE looks up (no Accept-Encoding), and a browser's.
	require.NoError(t, visitPlain(f, u))
	verify(t, f, purge.ExpectAny, []string{u})
	requireAll(t, verify(t, f, purge.ExpectHit, []string{u}), cachestatus.Hit)
	before := originHits(t, f, u)
	for _, extra := range [][]string{nil, {"--verify"}} {
		r := runCLI(t, s.token, append(append([]string{"purge", "--url", u}, extra...), f.Args()...)...)
		assert.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stdout, purge.ErrServedFromCache.Error())
		assert.Contains(t, r.stderr, "hint: the VCL answers PURGE as an ordinary request")
	}
	j := job(f, u)
	out := run(t, j)
	for _, res := range results(out.Purge) {
		assert.ErrorIs(t, res.Err, purge.ErrServedFromCache)
		var ie *purge.InstanceError
		require.True(t, errors.As(res.Err, &ie))
		assert.Equal(t, 200, ie.Status)
	}
	requireAll(t, verify(t, f, purge.ExpectHit, []string{u}), cachestatus.Hit)
	assert.Equal(t, before, originHits(t, f, u), "nothing was purged")
}

// purgeAnsweredAsMiss: a VCL that does not handle PURGE looks a PURGE up
// like any request: on an uncached URL it is a miss, the origin is sent a
// GET and the answer (its 200, "X-Cache: miss cached", "Age: 0") is stored.
// Nothing was purged, so the purge must not say it was, and its verify must
// not count the copy the PURGE itself stored as refilled by traffic.
func purgeAnsweredAsMiss(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/never-cached-before-purge")
	r := runCLI(t, s.token, append([]string{"purge", "--url", u, "--verify", "--format", "json"}, f.Args()...)...)
	var o outcomeJSON
	decodeJSON(t, r.stdout, &o)
	require.NotNil(t, o.Purge)
	// Each PURGE was sent to the origin as a GET (and stored), and each
	// verify request, a browser's, fetched its own variant.
	assert.Equal(t, 2*len(f.Members), originHits(t, f, u), "each PURGE was sent to the origin as a GET, and stored")
	require.Equal(t, 1, r.code, r)
	assert.False(t, o.Purge.OK)
	for _, res := range o.Purge.Results {
		assert.Equal(t, 200, res.Status)
		assert.False(t, res.OK)
		assert.Contains(t, res.Error, "does not handle PURGE")
	}
	assert.Contains(t, r.stderr, "hint: the VCL answers PURGE as an ordinary request")
	// Through the library the cause is ErrServedFromCache (the URL is now
	// cached, so this PURGE is answered as a hit; either way, the same cause).
	for _, res := range results(run(t, job(f, u)).Purge) {
		assert.ErrorIs(t, res.Err, purge.ErrServedFromCache)
	}
}

// otherCDNHeaders: the origin's own cache headers (another CDN in front of
// it: "Cache-Status: OriginCDN; fwd=miss", "X-Cache: Miss from cloudfront")
// are stored and delivered on every hit; X-Varnish wins, so a purge that did
// not happen is never verified.
func otherCDNHeaders(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/page")
	us := []string{u}
	verify(t, f, purge.ExpectAny, us)
	hit := verify(t, f, purge.ExpectHit, us)
	assert.True(t, hit.OK(), hit.Summary())
	for _, c := range results(hit) {
		assert.Equal(t, cachestatus.Hit, c.Class)
		assert.Equal(t, "x-varnish", c.Source)
		assert.Contains(t, c.Note, "ignored", "the stored header is named and set aside")
	}
	// No purge happened: strict miss fails, and so does a purge of another URL.
	r := runCLI(t, "", append([]string{"verify", "--url", u, "--expect", "miss"}, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	r = runCLI(t, s.token, append([]string{"purge", "--url", styleURL(s, "/other"), "--verify-url", u, "--verify=miss"}, f.Args()...)...)
	assert.Equal(t, 1, r.code, r)
	// The default --verify lets a hit pass when its copy may have been
	// stored after the purge began (Age at most the time since, plus a
	// second for Age's granularity): once the copy is older, it fails too.
	waitAge(t, f, u, 3)
	r = runCLI(t, s.token, append([]string{"purge", "--url", styleURL(s, "/other"), "--verify-url", u, "--verify"}, f.Args()...)...)
	assert.Equal(t, 1, r.code, "an old copy is not purged: %s", r)
	assert.Contains(t, r.stdout, "older than the purge")
	// A real purge is.
	r = runCLI(t, s.token, append([]string{"purge", "--url", u, "--verify=miss,hit"}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
}

// pipelyToken: pipely's PURGE guard: no token or a wrong one is refused.
func pipelyToken(t *testing.T, s style, f *fleet.Fleet) {
	u := styleURL(s, "/token")
	verify(t, f, purge.ExpectAny, []string{u})
	for bad, cause := range map[string]error{"": purge.ErrNoToken, "wrong-token": purge.ErrTokenRejected} {
		r := runCLI(t, bad, append([]string{"purge", "--url", u, "--format", "json"}, f.Args()...)...)
		assert.Equal(t, 1, r.code, r)
		var p purgeJSON
		decodeJSON(t, r.stdout, &p)
		for _, res := range p.Results {
			assert.Equal(t, 401, res.Status)
			assert.Equal(t, 1, res.Attempts)
			assert.Contains(t, res.Error, "Invalid PURGE token")
			assert.Contains(t, res.Error, cause.Error())
		}
	}
	requireAll(t, verify(t, f, purge.ExpectHit, []string{u}), cachestatus.Hit)
	r := runCLI(t, s.token, append([]string{"purge", "--url", u, "--verify=miss"}, f.Args()...)...)
	assert.Equal(t, 0, r.code, r)
}

// waitAge polls until every instance's copy of u is at least age seconds
// old.
func waitAge(t *testing.T, f *fleet.Fleet, u string, age int) {
	t.Helper()
	deadline := time.Now().Add(time.Duration(age+10) * time.Second)
	for {
		old := 0
		for _, c := range results(verify(t, f, purge.ExpectHit, []string{u})) {
			if c.Class.IsHit() && c.Age >= age {
				old++
			}
		}
		if old == len(f.Members) {
			return
		}
		require.False(t, time.Now().After(deadline), "the copies of %s never reached Age %d", u, age)
		time.Sleep(200 * time.Millisecond) // polling Age, with a deadline
	}
}
