package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/purge"
)

const verifyAbout = `Ask EVERY instance of the fleet for each URL, with the URL's Host header, and
check what its cache says it did (Cache-Status per RFC 9211, the forms real
fleets send, or X-Cache) against --expect.

Each answer is classified hit, stale, miss, bypass, synthetic or unknown:
  --expect hit    served from cache, fresh or stale
  --expect fresh  served from cache and not stale
  --expect stale  served from cache past its TTL
  --expect miss   fetched from the origin (what a purge must cause)
  --expect any    any answer at all

HEAD is sent by default, so no body is pulled from any instance; with
--method GET only the headers are read and the connection is then closed.
Asking an instance for a URL can itself fill its cache: a miss now is
usually a hit on the next request. With --wait, instances that do not match
are asked again every --interval until all match or the time is up; the
report then shows the last state of each.`

const verifyExamples = `  cdnpurge verify --url https://example.com/feed --dns-name my-cdn.internal --port 9000 --expect hit
  cdnpurge verify --url https://example.com/feed --dns-name my-cdn.internal --expect hit --wait 2m --interval 5s
  cdnpurge verify --url https://example.com/app.js --instance 10.0.0.7:9000 --header 'Accept-Encoding: gzip' --expect fresh
  cdnpurge verify --urls-file changed.txt --dns-name cdn.internal --expect any --format json`

func (a *App) verify(ctx context.Context, args []string) int {
	const cmd = "cdnpurge verify"
	fs := a.newFlagSet("verify", verifyAbout, verifyExamples)
	var t targetFlags
	t.register(fs)
	expect := fs.String("expect", "hit", "what every instance must say: `hit|fresh|stale|miss|any`")
	method := fs.String("method", "HEAD", "request `method`: HEAD, or GET when the site treats HEAD differently")
	wait := fs.Duration("wait", 0, "keep asking instances that do not match until all do or this much time has passed")
	interval := fs.Duration("interval", 5*time.Second, "with --wait: time between rounds")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	o, format, err := t.options()
	if err != nil {
		return a.usageErr(cmd, err)
	}
	exp, err := purge.ParseExpect(*expect)
	if err != nil {
		return a.usageErr(cmd, fmt.Errorf("--expect: %w", err))
	}
	o.Method = strings.ToUpper(*method)
	if o.Method != "HEAD" && o.Method != "GET" {
		return a.usageErr(cmd, fmt.Errorf("--method %q: verify sends HEAD or GET", *method))
	}
	if *wait < 0 || *interval <= 0 {
		return a.usageErr(cmd, fmt.Errorf("--wait must not be negative and --interval must be positive"))
	}
	ctx, cancel, urls, instances, code := t.load(ctx, a, cmd)
	if code != ExitOK {
		return code
	}
	defer cancel()
	rep, err := purge.VerifyUntil(ctx, o, exp, instances, urls, *wait, *interval)
	if err != nil {
		return a.usageErr(cmd, err)
	}
	if err := rep.Write(a.Stdout, format); err != nil {
		return a.fail(cmd, fmt.Errorf("write report: %w", err))
	}
	if !rep.OK() {
		return ExitFailed
	}
	return ExitOK
}

// parseVerifySteps reads purge's --verify value: "miss" or "miss,hit".
func parseVerifySteps(s string) ([]purge.Expect, error) {
	if s == "" {
		return nil, nil
	}
	var out []purge.Expect
	for _, p := range strings.Split(s, ",") {
		e, err := purge.ParseExpect(p)
		if err != nil {
			return nil, fmt.Errorf("--verify: %w (e.g. --verify miss or --verify miss,hit)", err)
		}
		out = append(out, e)
	}
	return out, nil
}
