package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/cdnpurge/cdnpurge/purge"
)

const verifyAbout = `Ask EVERY instance of the fleet for each URL, with the URL's Host header, as
a browser would (its Accept-Encoding and User-Agent, unless --header names
others), and check what its cache says it did against --expect.

The cache's own evidence decides: X-Varnish (two ids: a hit; one: a miss or
pass), Cache-Status (RFC 9211, and the form thechangelog/pipely sends),
X-Cache, X-Cache-Status, cf-cache-status, X-Magento-Cache-Debug, the header
--cache-header names, and Age. A header the origin sent and Varnish stored
with the object never decides against Varnish's own. Each answer is
classified hit, stale, miss, bypass, synthetic or unknown:
  --expect hit      served from cache, fresh or stale
  --expect fresh    served from cache and not stale
  --expect stale    served from cache past its TTL
  --expect miss     fetched from the origin (what a purge must cause)
  --expect current  the same version as the origin serves now (--origin)
  --expect any      any answer but a 5xx
A 5xx answer always fails: an error page proves nothing. X-Varnish and Age
alone cannot tell fresh from stale: --expect fresh or stale then fails and
says so. A hit on a cached 3xx or 4xx passes --expect hit with a warning,
unless --ok-status says that status is expected. The answers' Vary is
reported, with a warning when it names a header verify sent one value of.

--origin URL asks the origin (scheme, host and port of URL; each URL's path,
query and Host) for its current version first, and compares every copy with
it: strong ETag, else Last-Modified, else the body's length and SHA-256 (GET
is then sent, and bodies read up to 16 MiB). An origin that cannot be read
exits 2, nothing sent; one whose answers vary is reported, not guessed.

HEAD is sent by default (GET with --origin), so no body is pulled from any
instance; with --method GET and no --origin, only the headers are read and
the connection is then closed.
Asking an instance for a URL can itself fill its cache: a miss now is
usually a hit on the next request, but not a browser's, so a waiting hit
check never counts a copy its own earlier request stored. With --wait,
instances that do not match are asked again every --interval until all match
or the time is up, and once more as it ends (so a --wait shorter than the
interval still asks twice); the report then shows the last state of each,
and how long each instance took to match (with --origin: to serve the
current version).`

const verifyExamples = `  cdnpurge verify --url https://example.com/feed --dns-name my-cdn.internal --port 9000 --expect hit
  cdnpurge verify --url https://example.com/feed --dns-name my-cdn.internal --expect hit --wait 2m --interval 5s
  cdnpurge verify --urls-file changed.txt --dns-name my-cdn.internal --origin http://10.0.0.5:8080 --expect current --wait 2m
  cdnpurge verify --url https://example.com/app.js --instance 10.0.0.7:9000 --header 'Accept-Encoding: gzip' --expect fresh
  FLY_API_TOKEN=... cdnpurge verify --urls-file changed.txt --fly-app my-cdn --expect any --format json`

func (a *App) verify(ctx context.Context, args []string) error {
	f := newFlags("verify", verifyAbout, verifyExamples)
	var t target
	t.register(f)
	j := &t.job
	expect := f.String("expect", string(purge.DefaultExpect), "what every instance must say: `"+strings.Join(choices["verify/expect"].values, "|")+"`")
	f.StringVar(&j.VerifyMethod, "method", purge.DefaultVerifyMethod, "request `method`: HEAD, or GET when the site treats HEAD differently (GET with --origin)")
	f.DurationVar(&j.Wait, "wait", 0, "keep asking instances that do not match until all do or this much time has passed")
	f.DurationVar(&j.Interval, "interval", purge.DefaultInterval, fmt.Sprintf("with --wait: time between rounds (at least %s)", purge.MinInterval))
	f.StringVar(&j.Origin, "origin", "", "compare every copy with the origin's current version, asked of this base `URL` (scheme, host, port; each URL's path, query and Host are added), e.g. http://10.0.0.5:8080")
	f.Var(ints{v: &j.OKStatus}, "ok-status", "a `status` a cached copy is expected to have besides 2xx (a hit on another 3xx or 4xx warns); repeatable")
	if err := f.parse(a, args); err != nil {
		return err
	}
	if !f.set("method") {
		j.VerifyMethod = "" // the job's default: HEAD, or GET with --origin
	}
	if err := f.positive("interval"); err != nil {
		return err
	}
	if f.set("interval") && !f.set("wait") {
		return usagef("--interval %s only applies with --wait: without it, each instance is asked once", j.Interval).
			hint(fmt.Sprintf("give how long to keep asking, e.g. --wait 2m --interval %s", j.Interval))
	}
	exp, err := purge.ParseExpect(*expect)
	if err != nil {
		return &usageError{err: err}
	}
	j.VerifyOnly, j.Verify = true, []purge.Expect{exp}
	if err := t.finish(a); err != nil {
		return err
	}
	if t.via.url != "" {
		return a.verifyVia(ctx, &t)
	}
	return a.runJob(ctx, &t)
}
