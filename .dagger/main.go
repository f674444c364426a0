// Purge a URL from EVERY instance of a self-hosted Varnish CDN, and prove it.
//
// A PURGE sent to a CDN's public (anycast) address reaches one instance; the
// others keep serving stale content. These functions find every instance
// (DNS AAAA, A or SRV records, a static list, or a Fly.io app's machines),
// purge each one at once with the URL's Host header and an optional token,
// and verify with each cache's own evidence that none still serves the old
// copy. They run cdnpurge's Go library in the module's own process: each
// function maps its arguments to one purge.Job, exactly as the cdnpurge CLI
// maps its flags.
//
// A function's container has an IPv4-only network: it cannot reach a
// private IPv6 network such as Fly.io's 6PN (<app>.internal). For a Fly.io
// fleet use --fly-app: every machine is reached through the public edge.
//
// The Dagger CLI splits list arguments on commas: a URL or header value
// with a comma must be quoted for it ('"https://example.com/a,b"') or given
// in --urls-file.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"dagger/cdnpurge/internal/dagger"

	"github.com/cdnpurge/cdnpurge/purge"
	"github.com/cdnpurge/cdnpurge/purge/report"
)

// Cdnpurge purges and verifies URLs on every instance of a Varnish fleet.
type Cdnpurge struct{}

// Purge sends PURGE for each URL to EVERY instance of the fleet, all at
// once, with the URL's Host header, and returns the report. With --verify
// it then checks that no instance still serves a copy older than the
// purge. It fails (non-zero exit) when any instance was not purged or a
// check failed; the error says which step failed and holds the report.
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
	// Fly.io edge mode: purge every started machine of this app, listed by
	// the Machines API and reached through the public edge (no private
	// network needed).
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
	// Request method; default PURGE (PURGEKEYS for --tag).
	// +optional
	method string,
	// Purge every object with these tags (vmod xkey) instead of one URL; --url then only carries the Host.
	// +optional
	tag []string,
	// Soft purge: expire instead of drop (Purge-Soft; xkey-softpurge for --tag).
	// +optional
	soft bool,
	// Also count these statuses as purged, e.g. 404 for a VCL that answers 404 when nothing was cached.
	// +optional
	okStatus []int,
	// Extra request headers as 'Name: value'.
	// +optional
	header []string,
	// Send URLs as written instead of as a browser requests them.
	// +optional
	rawUrl bool,
	// How instances are reached: http or https; default http, https with --fly-app.
	// +optional
	scheme string,
	// With https: do not check certificates.
	// +optional
	insecure bool,
	// Most connections open at once, over all instances.
	// +optional
	// +default=1024
	concurrency int,
	// Most connections to one instance.
	// +optional
	// +default=4
	perInstance int,
	// Requests sent on a connection before reading their answers; 1 sends one at a time.
	// +optional
	// +default=64
	pipeline int,
	// Limit for each attempt: connect, send and the whole answer.
	// +optional
	// +default="5s"
	timeout string,
	// More attempts after a connection error, timeout, 429 or 5xx.
	// +optional
	// +default=2
	retries int,
	// Limit for the whole run, e.g. 2m; empty: none.
	// +optional
	deadline string,
	// Then check every instance: "purged" (no copy older than the purge), or strict steps such as "miss" then "hit".
	// +optional
	verify []string,
	// Check these URLs instead of --url (required after a ban or a tag purge).
	// +optional
	verifyUrl []string,
	// The fleet's name in RFC 9211 Cache-Status lists.
	// +optional
	cacheName string,
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
	j := purge.Job{
		URLs: url, DNSName: dnsName, Record: purge.RecordType(record), Resolver: resolver, Instances: instance, Port: port,
		Fly:         purge.Fly{App: flyApp, API: flyApi, Regions: region, Connect: connect},
		TokenHeader: tokenHeader, Method: method, Tags: tag, Soft: soft, OKStatus: okStatus, Headers: header, RawURLs: rawUrl,
		Scheme: scheme, Insecure: insecure, Concurrency: concurrency, PerInstance: perInstance, Pipeline: pipeline,
		Attempts: retries + 1, VerifyURLs: verifyUrl, CacheName: cacheName,
	}
	in := inputs{urlsFile: urlsFile, token: token, flyToken: flyToken, durations: map[string]string{"dns-timeout": dnsTimeout, "timeout": timeout, "deadline": deadline}}
	if err := in.apply(ctx, &j); err != nil {
		return "", err
	}
	var err error
	if j.Verify, err = expects(verify); err != nil {
		return "", err
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
	// URLs that carry the Host to ban on, e.g. https://example.com/.
	url []string,
	// The regular expression over paths to ban, e.g. ^/assets/.
	regex string,
	// Only ban objects whose Content-Type matches this expression.
	// +optional
	contentType string,
	// Internal DNS name whose records list EVERY instance.
	// +optional
	dnsName string,
	// Record type: aaaa, a or srv.
	// +optional
	// +default="aaaa"
	record string,
	// DNS server as HOST:PORT.
	// +optional
	resolver string,
	// Static instances as ADDR[:PORT].
	// +optional
	instance []string,
	// The instances' port.
	// +optional
	// +default=80
	port int,
	// Fly.io edge mode: every started machine of this app.
	// +optional
	flyApp string,
	// Fly.io API token, e.g. env://FLY_API_TOKEN.
	// +optional
	flyToken *dagger.Secret,
	// With --fly-app: connect to HOST:PORT instead of the URL's host.
	// +optional
	connect string,
	// Purge token, e.g. env://PURGE_TOKEN.
	// +optional
	token *dagger.Secret,
	// Header that carries the token.
	// +optional
	// +default="Purge-Token"
	tokenHeader string,
	// How instances are reached: http or https.
	// +optional
	scheme string,
	// Limit for each attempt.
	// +optional
	// +default="5s"
	timeout string,
	// Then check these URLs: no instance may serve a copy older than the ban.
	// +optional
	verifyUrl []string,
	// Report format: text, json or markdown.
	// +optional
	// +default="text"
	format string,
) (string, error) {
	j := purge.Job{URLs: url, Ban: regex, BanContentType: contentType, DNSName: dnsName, Record: purge.RecordType(record),
		Resolver: resolver, Instances: instance, Port: port, Fly: purge.Fly{App: flyApp, Connect: connect},
		TokenHeader: tokenHeader, Scheme: scheme, VerifyURLs: verifyUrl}
	if len(verifyUrl) > 0 {
		j.Verify = []purge.Expect{purge.ExpectPurged}
	}
	in := inputs{token: token, flyToken: flyToken, durations: map[string]string{"timeout": timeout}}
	if err := in.apply(ctx, &j); err != nil {
		return "", err
	}
	return run(ctx, j, format, false, false)
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
	// What every instance must say: hit (fresh or stale), fresh, stale, miss or any.
	// +optional
	// +default="hit"
	expect string,
	// Internal DNS name whose records list EVERY instance.
	// +optional
	dnsName string,
	// Record type: aaaa, a or srv.
	// +optional
	// +default="aaaa"
	record string,
	// DNS server as HOST:PORT.
	// +optional
	resolver string,
	// Static instances as ADDR[:PORT].
	// +optional
	instance []string,
	// The instances' port.
	// +optional
	// +default=80
	port int,
	// Fly.io edge mode: every started machine of this app.
	// +optional
	flyApp string,
	// Fly.io API token, e.g. env://FLY_API_TOKEN.
	// +optional
	flyToken *dagger.Secret,
	// With --fly-app: only machines in these regions.
	// +optional
	region []string,
	// With --fly-app: connect to HOST:PORT instead of the URL's host.
	// +optional
	connect string,
	// HEAD, or GET when the site treats HEAD differently.
	// +optional
	// +default="HEAD"
	method string,
	// Extra request headers as 'Name: value' (e.g. Accept-Encoding: gzip for that variant).
	// +optional
	header []string,
	// How instances are reached: http or https.
	// +optional
	scheme string,
	// With https: do not check certificates.
	// +optional
	insecure bool,
	// Most connections open at once.
	// +optional
	// +default=1024
	concurrency int,
	// Limit for each attempt.
	// +optional
	// +default="5s"
	timeout string,
	// More attempts after a connection error or timeout.
	// +optional
	// +default=2
	retries int,
	// Keep asking instances that do not match for this long, e.g. 2m.
	// +optional
	wait string,
	// With --wait: time between rounds.
	// +optional
	// +default="5s"
	interval string,
	// The fleet's name in RFC 9211 Cache-Status lists.
	// +optional
	cacheName string,
	// Report format: text, json or markdown.
	// +optional
	// +default="text"
	format string,
) (string, error) {
	exp, err := purge.ParseExpect(expect)
	if err != nil {
		return "", err
	}
	j := purge.Job{URLs: url, VerifyOnly: true, Verify: []purge.Expect{exp}, DNSName: dnsName, Record: purge.RecordType(record),
		Resolver: resolver, Instances: instance, Port: port, Fly: purge.Fly{App: flyApp, Regions: region, Connect: connect},
		VerifyMethod: method, Headers: header, Scheme: scheme, Insecure: insecure, Concurrency: concurrency,
		Attempts: retries + 1, CacheName: cacheName}
	in := inputs{urlsFile: urlsFile, flyToken: flyToken, durations: map[string]string{"timeout": timeout, "wait": wait, "interval": interval}}
	if err := in.apply(ctx, &j); err != nil {
		return "", err
	}
	return run(ctx, j, format, false, false)
}

// inputs are the arguments that need reading before they go in the job:
// files, secrets and durations.
type inputs struct {
	urlsFile        *dagger.File
	token, flyToken *dagger.Secret
	durations       map[string]string
}

func (in inputs) apply(ctx context.Context, j *purge.Job) error {
	if in.urlsFile != nil {
		text, err := in.urlsFile.Contents(ctx)
		if err != nil {
			return fmt.Errorf("read --urls-file: %w", err)
		}
		urls, err := purge.ReadURLs(strings.NewReader(text), "--urls-file", j.RawURLs)
		if err != nil {
			return err
		}
		j.URLList = urls
	}
	var err error
	if in.token != nil {
		if j.Token, err = in.token.Plaintext(ctx); err != nil {
			return fmt.Errorf("read --token: %w", err)
		}
	}
	if in.flyToken != nil {
		if j.Fly.Token, err = in.flyToken.Plaintext(ctx); err != nil {
			return fmt.Errorf("read --fly-token: %w", err)
		}
	}
	for name, s := range in.durations {
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

// run runs (or plans) the job and returns the report; a failure is an
// error that says which step failed and holds the report.
func run(ctx context.Context, j purge.Job, format string, verbose, dryRun bool) (string, error) {
	f, err := report.ParseFormat(format)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if dryRun {
		p, err := j.Plan(ctx)
		if err != nil {
			return "", explain(err, j)
		}
		err = report.WritePlan(&b, f, p)
		return b.String(), err
	}
	out, err := j.Run(ctx)
	if err != nil {
		return "", explain(err, j)
	}
	if err := report.Write(&b, f, out, report.Options{Verbose: verbose}); err != nil {
		return "", err
	}
	if err := out.Err(); err != nil {
		msg := "FAILED: " + err.Error()
		if errors.Is(firstErr(out), purge.ErrNoToken) {
			msg += "\nhint: the instances want a purge token: pass --token env://PURGE_TOKEN"
		}
		return "", fmt.Errorf("%s\n\n%s", msg, b.String())
	}
	return b.String(), nil
}

// explain adds the Dagger CLI's remedy to a setting that cannot work: a
// list argument it split on a comma.
func explain(err error, j purge.Job) error {
	var je *purge.JobError
	if errors.As(err, &je) && (len(j.URLs) > 1 || len(j.Headers) > 1) &&
		(strings.Contains(err.Error(), "url ") || strings.Contains(err.Error(), "header ")) {
		return fmt.Errorf("%w\nhint: the Dagger CLI splits list arguments on commas; quote a value that has one ('\"https://example.com/a,b\"'), or give URLs in --urls-file", err)
	}
	return err
}

// firstErr is the first failure of the outcome, for choosing a hint.
func firstErr(out *purge.Outcome) error {
	for _, r := range out.Reports() {
		for k := range r.Len() {
			if err := r.Err(k); err != nil {
				return err
			}
		}
	}
	return nil
}
