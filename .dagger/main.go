// Purge a URL from EVERY instance of a self-hosted Varnish CDN, and prove it.
//
// A PURGE sent to a CDN's public (anycast) address reaches one instance; the
// others keep serving stale content. These functions find every instance
// (DNS AAAA, A or SRV records, a static list, or a Fly.io app's machines),
// purge each one at once with the URL's Host header and an optional token,
// and verify with each cache's own evidence that none still serves the old
// copy. They run cdnpurge's Go library in the module's own process.
//
// The constructor holds where the fleet is and how each instance is reached;
// purge, ban and verify take only what is theirs:
//
//	dagger call --dns-name cdn.internal --port 9000 --token env://PURGE_TOKEN purge --url https://example.com/feed --verify purged
//
// Each function maps the constructor's settings and its own arguments to one
// purge.Job, exactly as the cdnpurge CLI maps its flags, with the library's
// defaults.
//
// A function's container has an IPv4-only network: it cannot reach a
// private IPv6 network such as Fly.io's 6PN (<app>.internal). A run that
// finds IPv6 instances fails before sending anything; for a Fly.io fleet use
// --fly-app: every machine is reached through the public edge.
//
// The Dagger CLI splits list arguments on commas: a URL or header value
// with a comma must be quoted for it ('"https://example.com/a,b"') or given
// in --urls-file.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"dagger/cdnpurge/internal/dagger"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
)

// Cdnpurge purges and verifies URLs on every instance of a Varnish fleet.
// Its fields are the constructor's arguments (see New), kept as given.
type Cdnpurge struct {
	// +private
	DNSName string
	// +private
	Record string
	// +private
	Resolver string
	// +private
	DNSTimeout string
	// +private
	Instance []string
	// +private
	Port int
	// +private
	FlyApp string
	// +private
	FlyToken *dagger.Secret
	// +private
	FlyAPI string
	// +private
	Region []string
	// +private
	Connect string
	// +private
	Token *dagger.Secret
	// +private
	TokenHeader string
	// +private
	Scheme string
	// +private
	Insecure bool
	// +private
	Header []string
	// +private
	Timeout string
	// +private
	Retries int
	// +private
	Concurrency int
	// +private
	PerInstance int
	// +private
	Pipeline int
	// +private
	Deadline string
	// +private
	OKStatus []int
	// +private
	RawURL bool
	// +private
	CacheName string
	// +private
	CacheHeader string
	// +private
	Via string
	// +private
	APIToken *dagger.Secret
}

// New holds where the fleet is and how each instance is reached, for every
// function: exactly one of --dns-name, --instance and --fly-app, and the
// settings of the connections.
func New(
	// Internal DNS name whose records list EVERY instance (not the public host), e.g. my-cdn.internal.
	// +optional
	dnsName string,
	// Record type listing the instances: aaaa (Fly.io's <app>.internal), a or srv.
	// +optional
	// +default="aaaa"
	record string,
	// DNS server as HOST:PORT; default: the engine's resolver.
	// +optional
	resolver string,
	// How long to wait for each DNS answer, e.g. 3s.
	// +optional
	// +default="3s"
	dnsTimeout string,
	// Static instances as ADDR[:PORT]; a host name stands for every address it has.
	// +optional
	instance []string,
	// The instances' port (for aaaa, a and --instance without a port).
	// +optional
	// +default=80
	port int,
	// Fly.io edge mode: every started machine of this app, listed by the
	// Machines API and reached through the public edge (no private network
	// needed).
	// +optional
	flyApp string,
	// Fly.io API token, e.g. env://FLY_API_TOKEN.
	// +optional
	flyToken *dagger.Secret,
	// The Machines API's base URL.
	// +optional
	// +default="https://api.machines.dev"
	flyApi string,
	// With --fly-app: only machines in these regions, e.g. iad.
	// +optional
	region []string,
	// With --fly-app: connect to HOST:PORT instead of the URL's host (a Flycast address).
	// +optional
	connect string,
	// Purge token, sent in --token-header, e.g. env://PURGE_TOKEN.
	// +optional
	token *dagger.Secret,
	// Header that carries the token.
	// +optional
	// +default="Purge-Token"
	tokenHeader string,
	// How instances are reached: http or https; default http, https with --fly-app.
	// +optional
	scheme string,
	// With https: do not check certificates.
	// +optional
	insecure bool,
	// Extra request headers as 'Name: value'.
	// +optional
	header []string,
	// Limit for each attempt: connect, send and the whole answer.
	// +optional
	// +default="5s"
	timeout string,
	// More attempts after a connection error, timeout, 429 or 5xx.
	// +optional
	// +default=2
	retries int,
	// Most connections open at once, over all instances.
	// +optional
	// +default=1024
	concurrency int,
	// Most connections to one instance.
	// +optional
	// +default=4
	perInstance int,
	// Requests sent on a connection before reading their answers; 1 sends one at a time (purge and ban; verify sends one at a time).
	// +optional
	// +default=64
	pipeline int,
	// Limit for the whole run, e.g. 2m; empty: none.
	// +optional
	deadline string,
	// Also count these statuses as purged, e.g. 404 for a VCL that answers 404 when nothing was cached.
	// +optional
	okStatus []int,
	// Send URLs as written instead of as a browser requests them.
	// +optional
	rawUrl bool,
	// The fleet's name in RFC 9211 Cache-Status lists.
	// +optional
	cacheName string,
	// Also read this header, which the application sets to HIT, MISS, PASS, UNCACHEABLE, STALE...
	// (X-Magento-Cache-Debug is always read).
	// +optional
	cacheHeader string,
	// Instead of all of the above: send every job to the cdnpurge serve at this URL (e.g.
	// https://purge.example.com), which finds every instance and sends to each. Reaches a
	// private fleet (Fly.io's 6PN) from a function's IPv4-only network through one endpoint.
	// +optional
	via string,
	// With --via: the serve's API token, e.g. env://CDNPURGE_API_TOKEN.
	// +optional
	apiToken *dagger.Secret,
) *Cdnpurge {
	return &Cdnpurge{
		DNSName: dnsName, Record: record, Resolver: resolver, DNSTimeout: dnsTimeout, Instance: instance, Port: port,
		FlyApp: flyApp, FlyToken: flyToken, FlyAPI: flyApi, Region: region, Connect: connect,
		Token: token, TokenHeader: tokenHeader, Scheme: scheme, Insecure: insecure, Header: header,
		Timeout: timeout, Retries: retries, Concurrency: concurrency, PerInstance: perInstance, Pipeline: pipeline,
		Deadline: deadline, OKStatus: okStatus, RawURL: rawUrl, CacheName: cacheName, Via: via, APIToken: apiToken,
		CacheHeader: cacheHeader,
	}
}

// Purge sends PURGE for each URL to EVERY instance of the fleet, all at
// once, with the URL's Host header, and returns the report. With --verify
// it then checks that no instance still serves a copy older than the
// purge. It fails (non-zero exit) when any instance was not purged or a
// check failed; the error says whether anything was sent, which step
// failed, and holds the report.
//
// +cache="never"
func (m *Cdnpurge) Purge(
	ctx context.Context,
	// Absolute URLs as the public sees them, e.g. https://example.com/feed.
	// +optional
	url []string,
	// A file of URLs, one a line (# comments and blank lines skipped); for
	// many URLs, and for URLs with commas.
	// +optional
	urlsFile *dagger.File,
	// Request method; default PURGE (PURGEKEYS for --tag).
	// +optional
	method string,
	// Purge every object with these tags (vmod xkey) instead of one URL; --url then only carries the Host.
	// +optional
	tag []string,
	// Soft purge: expire instead of drop (Purge-Soft; xkey-softpurge for --tag).
	// +optional
	soft bool,
	// Then check every instance: "purged" (no copy older than the purge), or strict steps such as "miss" then "hit".
	// +optional
	verify []string,
	// Check these URLs instead of --url (required after a tag purge).
	// +optional
	verifyUrl []string,
	// With --verify: compare every copy with the origin's current version, asked of this base URL (scheme, host, port), e.g. http://10.0.0.5:8080.
	// +optional
	origin string,
	// With --verify: pass a copy whose Age cannot tell whether it was stored before or after the purge.
	// +optional
	acceptUncertain bool,
	// Find the instances and return what would be sent; send nothing.
	// +optional
	dryRun bool,
	// Report format: text, json or markdown.
	// +optional
	// +default="text"
	format string,
	// Show every result, also in large runs.
	// +optional
	verbose bool,
) (string, error) {
	j, err := m.job(ctx, url, urlsFile)
	if err != nil {
		return "", nothingSent(err, j)
	}
	j.Method, j.Tags, j.Soft, j.VerifyURLs = method, tag, soft, verifyUrl
	j.Origin, j.AcceptUncertain = origin, acceptUncertain
	if j.Verify, err = expects(verify); err != nil {
		return "", nothingSent(err, j)
	}
	if m.Via != "" {
		return viaPurge(ctx, m.Via, m.APIToken, j, format, verbose, dryRun)
	}
	return run(ctx, j, format, verbose, dryRun)
}

// Ban sends a BAN to EVERY instance: each invalidates every object of the
// URL's host whose path matches --regex (in the X-Url header, with the host
// in X-Host, where the shipped VCL and FOSHttpCache's read them).
//
// +cache="never"
func (m *Cdnpurge) Ban(
	ctx context.Context,
	// The regular expression over paths to ban, e.g. ^/assets/.
	regex string,
	// URLs that carry the Host to ban on, e.g. https://example.com/.
	// +optional
	url []string,
	// A file of such URLs, one a line.
	// +optional
	urlsFile *dagger.File,
	// Only ban objects whose Content-Type matches this expression.
	// +optional
	contentType string,
	// Send a regex without a literal path prefix (e.g. \.css$) with the path /: VCLs that ban by the request path then ban every object of the host.
	// +optional
	broad bool,
	// Request method: BAN, or the one the VCL bans on (varnish/toolbox: PURGEDIR).
	// +optional
	method string,
	// Then check --verify-url: "purged" (no instance may serve a copy older than the ban), or strict steps.
	// +optional
	verify []string,
	// The URLs to check (a ban's --url only carries the Host).
	// +optional
	verifyUrl []string,
	// With --verify: compare every copy with the origin's current version, asked of this base URL.
	// +optional
	origin string,
	// With --verify: pass a copy whose Age cannot tell whether it was stored before or after the ban.
	// +optional
	acceptUncertain bool,
	// Find the instances and return what would be sent; send nothing.
	// +optional
	dryRun bool,
	// Report format: text, json or markdown.
	// +optional
	// +default="text"
	format string,
	// Show every result, also in large runs.
	// +optional
	verbose bool,
) (string, error) {
	j, err := m.job(ctx, url, urlsFile)
	if err != nil {
		return "", nothingSent(err, j)
	}
	j.Ban, j.BanContentType, j.VerifyURLs = regex, contentType, verifyUrl
	j.Broad, j.Method, j.Origin, j.AcceptUncertain = broad, method, origin, acceptUncertain
	if j.Verify, err = expects(verify); err != nil {
		return "", nothingSent(err, j)
	}
	if m.Via != "" {
		return viaPurge(ctx, m.Via, m.APIToken, j, format, verbose, dryRun)
	}
	return run(ctx, j, format, verbose, dryRun)
}

// Verify asks EVERY instance for each URL (HEAD, or GET reading no body) and
// checks what its cache says (X-Varnish, Cache-Status, X-Cache, Age) against
// --expect: hit, fresh, stale, miss or any. It fails when any instance does
// not match; with --wait it asks again until all match or the time is up.
//
// +cache="never"
func (m *Cdnpurge) Verify(
	ctx context.Context,
	// Absolute URLs as the public sees them.
	// +optional
	url []string,
	// A file of URLs, one a line.
	// +optional
	urlsFile *dagger.File,
	// What every instance must say: hit (fresh or stale), fresh, stale, miss, current (with --origin) or any.
	// +optional
	// +default="hit"
	expect string,
	// HEAD, or GET when the site treats HEAD differently; default HEAD, GET with --origin.
	// +optional
	method string,
	// Compare every copy with the origin's current version, asked of this base URL (scheme, host, port).
	// +optional
	origin string,
	// Keep asking instances that do not match for this long, e.g. 2m.
	// +optional
	wait string,
	// With --wait: time between rounds.
	// +optional
	// +default="5s"
	interval string,
	// Report format: text, json or markdown.
	// +optional
	// +default="text"
	format string,
	// Show every result, also in large runs.
	// +optional
	verbose bool,
) (string, error) {
	j, err := m.job(ctx, url, urlsFile)
	if err != nil {
		return "", nothingSent(err, j)
	}
	exp, err := purge.ParseExpect(expect)
	if err != nil {
		return "", nothingSent(err, j)
	}
	j.VerifyOnly, j.Verify, j.VerifyMethod, j.Origin = true, []purge.Expect{exp}, method, origin
	if err := durations(&j, map[string]string{"wait": wait, "interval": interval}); err != nil {
		return "", nothingSent(err, j)
	}
	if m.Via != "" {
		return viaVerify(ctx, m.Via, m.APIToken, j, format, verbose)
	}
	return run(ctx, j, format, verbose, false)
}

// job maps the constructor's settings and the URLs to a purge.Job: files
// and secrets read, durations parsed. A function's network has no IPv6, so
// the job refuses IPv6 instances before sending (NoIPv6).
func (m *Cdnpurge) job(ctx context.Context, urls []string, urlsFile *dagger.File) (purge.Job, error) {
	j := purge.Job{
		DNSName: m.DNSName, Record: purge.RecordType(m.Record), Resolver: m.Resolver, Instances: m.Instance, Port: m.Port,
		Fly:         purge.Fly{App: m.FlyApp, API: m.FlyAPI, Regions: m.Region, Connect: m.Connect},
		TokenHeader: m.TokenHeader, Scheme: m.Scheme, Insecure: m.Insecure, Headers: m.Header,
		Attempts: m.Retries + 1, Concurrency: m.Concurrency, PerInstance: m.PerInstance, Pipeline: m.Pipeline,
		OKStatus: m.OKStatus, RawURLs: m.RawURL, CacheName: m.CacheName, CacheHeader: m.CacheHeader,
		URLs: urls, NoIPv6: true,
	}
	if m.Retries < 0 {
		return j, fmt.Errorf("--retries %d: give 0 or more", m.Retries)
	}
	if err := durations(&j, map[string]string{"dns-timeout": m.DNSTimeout, "timeout": m.Timeout, "deadline": m.Deadline}); err != nil {
		return j, err
	}
	if urlsFile != nil {
		text, err := urlsFile.Contents(ctx)
		if err != nil {
			return j, fmt.Errorf("read --urls-file: %w", err)
		}
		list, err := purge.ReadURLs(strings.NewReader(text), "--urls-file", j.RawURLs)
		if err != nil {
			return j, err
		}
		j.URLList = list
	}
	var err error
	if m.Token != nil {
		if j.Token, err = m.Token.Plaintext(ctx); err != nil {
			return j, fmt.Errorf("read --token: %w", err)
		}
	}
	if m.FlyToken != nil {
		if j.Fly.Token, err = m.FlyToken.Plaintext(ctx); err != nil {
			return j, fmt.Errorf("read --fly-token: %w", err)
		}
	}
	return j, nil
}

// durations parses duration arguments into j, by argument name.
func durations(j *purge.Job, args map[string]string) error {
	for name, s := range args {
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("--%s %q: give a positive duration such as 5s or 2m", name, s)
		}
		switch name {
		case "dns-timeout":
			j.DNSTimeout = d
		case "timeout":
			j.Timeout = d
		case "deadline":
			j.Deadline = d
		case "wait":
			j.Wait = d
		case "interval":
			j.Interval = d
		}
	}
	return nil
}

func expects(steps []string) ([]purge.Expect, error) {
	var out []purge.Expect
	for _, s := range steps {
		e, err := purge.ParseExpect(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// run runs (or plans) the job and returns the report. An error starts with
// whether anything was sent, as the CLI's exit codes 2 and 1 tell (Dagger
// exits 1 for both); after sending it holds the report.
func run(ctx context.Context, j purge.Job, format string, verbose, dryRun bool) (string, error) {
	f, err := report.ParseFormat(format)
	if err != nil {
		return "", nothingSent(err, j)
	}
	var b strings.Builder
	if dryRun {
		p, err := j.Plan(ctx)
		if err != nil {
			return "", nothingSent(err, j)
		}
		err = report.WritePlan(&b, f, p)
		return b.String(), err
	}
	out, err := j.Run(ctx)
	if err != nil {
		return "", nothingSent(err, j)
	}
	if err := report.Write(&b, f, out, report.Options{Verbose: verbose}); err != nil {
		return "", fmt.Errorf("sent, and FAILED: write the report: %w", err)
	}
	if err := out.Err(); err != nil {
		msg := "sent, and FAILED: " + err.Error()
		for _, h := range failureHints(out) {
			msg += "\nhint: " + h
		}
		return "", fmt.Errorf("%s\n\n%s", msg, b.String())
	}
	return b.String(), nil
}

// nothingSent is an error of a run that stopped before sending anything,
// with its remedy worded once, in this module's arguments.
func nothingSent(err error, j purge.Job) error {
	msg := "nothing was sent: " + err.Error()
	if h := remedy(err, j); h != "" {
		msg += "\nhint: " + h
	}
	return errors.New(msg)
}

// remedy says what to change, in this module's arguments, about a run that
// could not start.
func remedy(err error, j purge.Job) string {
	var (
		je *purge.JobError
		de *purge.DiscoveryError
	)
	switch {
	case errors.As(err, &je):
		// A list argument the Dagger CLI split on a comma.
		if (len(j.URLs) > 1 || len(j.Headers) > 1) && (strings.Contains(err.Error(), "url ") || strings.Contains(err.Error(), "header ")) {
			return "the Dagger CLI splits list arguments on commas; quote a value that has one ('\"https://example.com/a,b\"'), or give URLs in --urls-file"
		}
	case errors.As(err, &de):
		switch de.Kind {
		case purge.KindIPv6:
			return "a Dagger function's network has no IPv6, wherever the engine runs. For a Fly.io fleet pass --fly-app " +
				"(edge mode: each machine through the public edge); otherwise send through a broadcaster inside the " +
				"fleet's network that the engine reaches over IPv4 (cdnpurge serve), or run the cdnpurge CLI there"
		case purge.KindNoRecords:
			if de.Suggest != "" {
				return "pass --record " + string(de.Suggest)
			}
			if len(de.Regions) > 0 {
				return "pass --region with the app's regions, or leave it out to purge them all"
			}
		case purge.KindTimeout:
			if de.Record == "" {
				return "raise --timeout: it limits the Machines API's answer too"
			}
			return "check --resolver (it must be reachable over IPv4 from the engine), or raise --dns-timeout"
		case purge.KindStopped:
			if errors.Is(de, purge.ErrDeadline) {
				return "raise --deadline: it limits the whole run, finding the instances included"
			}
			return ""
		case purge.KindUnreachable:
			if de.Record != "" {
				return "check --resolver (it must be reachable over IPv4 from the engine)"
			}
			return "check --fly-api and the engine's network"
		case purge.KindAPI:
			switch de.Status {
			case http.StatusUnauthorized, http.StatusForbidden:
				return "check --fly-token (e.g. env://FLY_API_TOKEN)"
			case 0: // not followed to another address
				return "check --fly-api"
			}
		}
		return de.Hint()
	}
	return ""
}

// failureHints words, once each, the remedies for the failures in out.
func failureHints(out *purge.Outcome) []string {
	causes := []struct {
		err  error
		hint string
	}{
		{purge.ErrNoToken, "the instances want a purge token: pass --token env://PURGE_TOKEN (before the function's name)"},
		{purge.ErrTokenRejected, "the purge token was refused: check --token and --token-header"},
		{purge.ErrNotFound, "if the VCL answers 404 when nothing was cached, pass --ok-status 404"},
		{purge.ErrServedFromCache, "the VCL answers PURGE as an ordinary request: add PURGE handling (see the README's 'Works with')"},
		{purge.ErrPurgeNotHandled, "the VCL answers PURGE as an ordinary request: add PURGE handling (see the README's 'Works with')"},
		{purge.ErrStopped, "the run was stopped by --deadline before every request was answered"},
	}
	seen := make([]bool, len(causes))
	var badCert *tls.CertificateVerificationError
	for _, r := range out.Reports() {
		for k := range r.Len() {
			if err := r.Err(k); err != nil {
				for i, c := range causes {
					seen[i] = seen[i] || errors.Is(err, c.err)
				}
				if badCert == nil {
					errors.As(err, &badCert)
				}
			}
		}
	}
	var hints []string
	for i, c := range causes {
		if seen[i] && !slices.Contains(hints, c.hint) {
			hints = append(hints, c.hint)
		}
	}
	if badCert != nil {
		hints = append(hints, "the certificate did not verify for the URL's host: pass --scheme http to reach the instances without TLS, or --insecure to skip the check")
	}
	return hints
}
