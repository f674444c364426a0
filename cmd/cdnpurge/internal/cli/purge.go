package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
)

const purgeAbout = `Send PURGE for each URL to EVERY instance of the fleet, all at once, with the
URL's Host header, and report what each instance answered.

Instances come from a DNS lookup of --dns-name (AAAA by default, as Fly.io's
<app>.internal), from --instance, or from a Fly.io app's machines (--fly-app,
each reached through the public edge). Each request goes to http://[ADDR]:PORT
with the URL as a browser requests it (host lower-cased, no default port, no
dot segments; --raw-url sends it as written), 'Host: <the URL's host>',
'User-Agent: cdnpurge/<version>', and the purge token header when a token is
set.

"ok" means the instance itself answered 2xx (or an --ok-status) to this very
request. A purge answered as an ordinary cache hit (X-Varnish with two ids),
or passed on to the application (one id and an Age), is a failure: that VCL
does not handle the method. Redirects are not followed.
ATTEMPTS counts the times a request was written: what the instance may have
received. "not sent" is said only of what was never written; a request
written without an answer is "no answer". An instance that fails to connect,
or answers nothing, 3 times in a row is given up: its remaining URLs are
reported as not sent at once. How deep requests are pipelined is learned per
instance (a close after k answers, a stall, answers that do not pair).

The token is read from the PURGE_TOKEN environment variable or --token-file
(never from a flag, which other users could see in the process list); no 8
consecutive characters of it (or of the Fly.io token) are ever printed.

--verify then asks every instance for each URL, as a browser would: no
instance may still serve a copy older than the purge (a miss passes, and so
does a copy stored after the purge, as live traffic refills caches). Which
copy is older is told by the content with --origin (a copy equal to the
origin's passes, whatever its age), else by the instance's own clock where
its VCL says when it purged and when it fetched the copy (the shipped one
does), else by Age, which cannot order a copy stored within a second of the
purge ("cannot tell": it fails unless --accept-uncertain). After --soft, each
instance may serve the old copy stale once, then must serve a fresh one.
--verify=miss,hit checks strictly: a miss everywhere, then a hit on the next
request.`

const purgeExamples = `  PURGE_TOKEN=... cdnpurge purge --url https://example.com/podcast/1 --dns-name my-cdn.internal --port 9000 --verify
  cdnpurge purge --urls-file changed.txt --dns-name cdn.internal --summary-file "$GITHUB_STEP_SUMMARY"
  git diff --name-only | sed 's|^|https://example.com/|' | cdnpurge purge --urls-file - --instance 10.0.0.7:9000 --instance 10.0.0.8:9000
  cdnpurge purge --url https://example.com/ --dns-name _http._tcp.cdn.example --record srv --resolver 10.0.0.2:53
  cdnpurge purge --url https://example.com/ --tag post-42 --dns-name cdn.internal --verify-url https://example.com/posts/42 --verify
  FLY_API_TOKEN=... cdnpurge purge --url https://example.com/feed --fly-app my-cdn --region iad,sjc --verify
  cdnpurge purge --url https://example.com/feed --dns-name cdn.internal --verify=miss,hit   # strictly: miss everywhere, then hit
  cdnpurge purge --url https://example.com/feed --dns-name cdn.internal --verify --origin http://10.0.0.5:8080   # by content
  cdnpurge purge --url https://example.com/feed --dns-name cdn.internal --dry-run`

// sendFlags are the flags of the commands that invalidate: purge and ban.
type sendFlags struct {
	target
	tokenFile  string
	dryRun     bool
	steps      verifySteps
	verifyURLs []string
}

func (s *sendFlags) register(f *flags) {
	s.target.register(f)
	j := &s.job
	f.StringVar(&s.tokenFile, "token-file", "", "read the purge token from `FILE` (default: $PURGE_TOKEN; none when neither is set)")
	f.StringVar(&j.TokenHeader, "token-header", purge.DefaultTokenHeader, "`name` of the header that carries the token")
	f.BoolVar(&s.dryRun, "dry-run", false, "find the instances and print what would be sent; send nothing")
	f.Var(&s.steps, "verify", "then check every instance: alone, that no instance serves a copy older than the purge; with =STEPS, strict steps in order, e.g. --verify=miss,hit (steps: "+choices["verify"].words()+")")
	f.Var(list{v: &s.verifyURLs}, "verify-url", "check this `URL` instead of --url (required after a ban or a tag purge, whose --url only carries the Host); repeatable")
	f.Var(ints{v: &j.OKStatus}, "ok-status", "also count this `status` as purged, e.g. 404 for a VCL that answers 404 when nothing was cached; repeatable")
	f.IntVar(&j.Pipeline, "pipeline", purge.DefaultPipeline, "requests sent on a connection before reading their answers (HTTP/1.1 pipelining); 1 sends one at a time")
	f.StringVar(&j.Origin, "origin", "", "with --verify: compare every copy with the origin's current version, asked of this base `URL` (scheme, host, port; each URL's path, query and Host are added), e.g. http://10.0.0.5:8080")
	f.BoolVar(&j.AcceptUncertain, "accept-uncertain", false, "with --verify: pass a copy whose Age cannot tell whether it was stored before or after the purge (within a second of it); --origin or the shipped VCL's clock settle it instead")
}

func (s *sendFlags) finish(a *App) error {
	if err := s.target.finish(a); err != nil {
		return err
	}
	tok, err := a.secret(s.tokenFile, "PURGE_TOKEN", "--token-file")
	if err != nil {
		return err
	}
	s.job.Token = tok
	a.secrets.Add(tok)
	s.job.Verify, s.job.VerifyURLs = s.steps.expects, s.verifyURLs
	return nil
}

// run runs the job (or plans it) and writes the report.
func (s *sendFlags) run(ctx context.Context, a *App) error {
	if s.via.url != "" {
		return a.runVia(ctx, &s.target)
	}
	if s.dryRun {
		if err := s.openSummary(); err != nil {
			return err
		}
		defer s.close()
		plan, err := s.job.Plan(ctx)
		if err != nil {
			return err
		}
		if err := report.WritePlan(a.Stdout, s.reportFormat(), plan); err != nil {
			return err
		}
		if s.summary != nil {
			return report.WritePlan(s.summary, report.Markdown, plan)
		}
		return nil
	}
	return a.runJob(ctx, &s.target)
}

// runJob runs t's job, writes its report (and the Markdown summary) and
// says whether it failed.
func (a *App) runJob(ctx context.Context, t *target) (err error) {
	if err := t.openSummary(); err != nil {
		return err
	}
	defer func() {
		if cerr := t.close(); cerr != nil && err == nil {
			err = &failedError{err: fmt.Errorf("--summary-file: %w", cerr)}
		}
	}()
	j := t.job
	p := a.progress()
	j.Progress = p.show
	out, err := j.Run(ctx)
	p.done()
	if err != nil {
		return err
	}
	o := report.Options{Verbose: t.verbose}
	if err := report.Write(a.Stdout, t.reportFormat(), out, o); err != nil {
		// Requests were sent: a report that cannot be written is a failure,
		// not a usage error ("nothing was sent" would be false).
		return &failedError{err: fmt.Errorf("write the report: %w", err)}
	}
	if t.summary != nil {
		if err := report.Write(t.summary, report.Markdown, out, o); err != nil {
			return &failedError{err: fmt.Errorf("--summary-file: write the report: %w", err)}
		}
	}
	if err := out.Err(); err != nil {
		return &failedError{err: err, hints: failureHints(out, j)}
	}
	return nil
}

func (a *App) purge(ctx context.Context, args []string) error {
	f := newFlags("purge", purgeAbout, purgeExamples)
	var s sendFlags
	s.register(f)
	f.StringVar(&s.job.Method, "method", purge.DefaultMethod, "request `method`: PURGE, or any method your VCL handles (see also: cdnpurge ban)")
	f.Var(list{v: &s.job.Tags, split: true}, "tag", "purge every object tagged `TAG` (vmod xkey: sends PURGEKEYS with xkey-purge) instead of\none URL; --url then only carries the Host; repeatable")
	f.BoolVar(&s.job.Soft, "soft", false, "soft purge: expire instead of drop, so each instance serves the old copy once more while\nit fetches a fresh one (the shipped VCL's Purge-Soft header; xkey-softpurge for --tag)")
	if err := f.parse(a, args); err != nil {
		return err
	}
	switch {
	case !f.set("method"):
		s.job.Method = "" // the job's default: PURGE, or PURGEKEYS for tags
	case strings.TrimSpace(s.job.Method) == "":
		return usagef("--method is empty").hint("give PURGE or the method your VCL handles")
	}
	if err := s.finish(a); err != nil {
		return err
	}
	return s.run(ctx, a)
}

const banAbout = `Send a BAN to EVERY instance of the fleet: each invalidates every object of
the URL's host whose path matches --regex (a PCRE regular expression, as
Varnish reads it). The regex goes in the X-Url header and the host in X-Host
(^host$), where the shipped VCL and FOSHttpCache's VCL read them; --url only
carries the Host.

The request path is the regex's literal prefix (BAN /p/42/ for ^/p/42/): VCLs
that ban what the request path matches (Shopware's, varnish/toolbox's with
--method PURGEDIR) then ban no more than the regex would. A regex without a
literal prefix (\.css$, or one not anchored with ^) would ban every object
of the host there, and is refused unless --broad says that is meant.

A ban cannot be checked through the --url that carries the Host: give the
URLs to verify with --verify-url.`

const banExamples = `  PURGE_TOKEN=... cdnpurge ban --url https://example.com/ --regex '^/assets/' --dns-name cdn.internal --port 9000
  cdnpurge ban --url https://example.com/ --regex '\.css$' --broad --content-type '^text/css' --instance 10.0.0.7:9000
  cdnpurge ban --url https://example.com/ --regex '^/feed' --dns-name cdn.internal --verify-url https://example.com/feed --verify`

func (a *App) ban(ctx context.Context, args []string) error {
	f := newFlags("ban", banAbout, banExamples)
	var s sendFlags
	s.register(f)
	f.StringVar(&s.job.Ban, "regex", "", "the regular `expression` over paths to ban, e.g. ^/assets/ (required)")
	f.StringVar(&s.job.BanContentType, "content-type", "", "only ban objects whose Content-Type matches this `expression`")
	f.BoolVar(&s.job.Broad, "broad", false, "send a regex without a literal path prefix (e.g. \\.css$) with the path /: VCLs that ban by\nthe request path then ban every object of the host")
	f.StringVar(&s.job.Method, "method", "BAN", "request `method`: BAN, or the one your VCL bans on (varnish/toolbox: PURGEDIR)")
	if err := f.parse(a, args); err != nil {
		return err
	}
	switch {
	case !f.set("method"):
		s.job.Method = ""
	case strings.TrimSpace(s.job.Method) == "":
		return usagef("--method is empty: give BAN or the method your VCL bans on")
	}
	if s.job.Ban == "" {
		return usagef("--regex is required: the regular expression over paths to ban").hint("e.g. --regex '^/assets/'")
	}
	if err := s.finish(a); err != nil {
		return err
	}
	return s.run(ctx, a)
}

// verifySteps is --verify: alone (purged) or --verify=miss,hit. The
// steps are checked against choices["verify"] as the flag is parsed.
type verifySteps struct {
	expects []purge.Expect
	set     bool
}

func (v *verifySteps) String() string      { return "" }
func (v *verifySteps) IsBoolFlag() bool    { return true }
func (v *verifySteps) OptionalArg() string { return "STEPS" }
func (v *verifySteps) Set(s string) error {
	v.expects, v.set = nil, true
	switch s {
	case "true":
		v.expects = []purge.Expect{purge.ExpectPurged}
		return nil
	case "false":
		return nil
	}
	for _, p := range strings.Split(s, ",") {
		e, err := purge.ParseExpect(p)
		if err != nil {
			return err
		}
		v.expects = append(v.expects, e)
	}
	return nil
}
