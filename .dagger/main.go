// Purge a URL from EVERY instance of a self-hosted Varnish CDN, and prove it.
//
// A PURGE sent to a CDN's public (anycast) address reaches one instance; the
// others keep serving stale content. These functions find every instance
// through DNS (AAAA, A or SRV), purge each one at once with the URL's Host
// header and an optional token, and verify with Cache-Status that each one
// now misses. They run cdnpurge's Go library in the module's own process.
//
// A function runs inside the Dagger engine's network: it sees the public
// internet but not a private network such as Fly.io's 6PN. Point --resolver
// at a DNS server the engine can reach, list instances with --instance, or
// run the engine inside that network (a runner machine on it).
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"dagger/cdnpurge/internal/dagger"

	"github.com/cdnpurge/cdnpurge/purge"
)

// Cdnpurge purges and verifies URLs on every instance of a Varnish fleet.
type Cdnpurge struct{}

// target is what purge and verify share: where the instances are and how
// to reach them.
type target struct {
	urls        []string
	dnsName     string
	record      string
	resolver    string
	instances   []string
	port        int
	scheme      string
	headers     []string
	concurrency int
	timeout     string
	retries     int
	insecure    bool
	format      string
}

func (t target) prepare(ctx context.Context) (purge.Options, purge.Format, []purge.Instance, []*neturl.URL, error) {
	var o purge.Options
	f, err := purge.ParseFormat(t.format)
	if err != nil {
		return o, f, nil, nil, err
	}
	if len(t.urls) == 0 {
		return o, f, nil, nil, errors.New("no URL given: pass --url https://example.com/path (repeatable)")
	}
	urls := make([]*neturl.URL, 0, len(t.urls))
	for _, s := range t.urls {
		u, err := purge.ParseURL(s)
		if err != nil {
			return o, f, nil, nil, fmt.Errorf("--url: %w", err)
		}
		urls = append(urls, u)
	}
	o.Scheme, o.Insecure, o.Concurrency = t.scheme, t.insecure, t.concurrency
	if o.Timeout, err = time.ParseDuration(t.timeout); err != nil || o.Timeout <= 0 {
		return o, f, nil, nil, fmt.Errorf("--timeout %q: give a duration such as 5s", t.timeout)
	}
	o.Retries = t.retries
	if t.retries == 0 {
		o.Retries = -1
	}
	for _, h := range t.headers {
		k, v, err := purge.ParseHeader(h)
		if err != nil {
			return o, f, nil, nil, fmt.Errorf("--header: %w", err)
		}
		if o.Header == nil {
			o.Header = http.Header{}
		}
		o.Header.Add(k, v)
	}
	var instances []purge.Instance
	switch {
	case len(t.instances) > 0 && t.dnsName != "":
		err = errors.New("give --dns-name or --instance, not both")
	case len(t.instances) > 0:
		instances, err = purge.StaticInstances(t.instances, t.port)
	case t.dnsName == "":
		err = errors.New("no instances: give --dns-name NAME (the internal name listing every instance) or --instance ADDR[:PORT]")
	default:
		var rt purge.RecordType
		if rt, err = purge.ParseRecordType(t.record); err == nil {
			instances, err = purge.Discover(ctx, purge.Discovery{Name: t.dnsName, Record: rt, Port: t.port, Resolver: t.resolver})
		}
	}
	return o, f, instances, urls, err
}

// Purge sends PURGE for each URL to EVERY instance of the fleet, all at once,
// with the URL's Host header, and returns the report. It fails (non-zero
// exit) when any instance did not answer 2xx, or when --verify finds an
// instance still serving the URL from cache; the error holds the report.
//
// +cache="never"
func (m *Cdnpurge) Purge(
	ctx context.Context,
	// Absolute URLs as the public sees them, e.g. https://example.com/feed.
	url []string,
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
	// Static instances as ADDR[:PORT] instead of DNS.
	// +optional
	instance []string,
	// The instances' port (for aaaa, a and --instance without a port).
	// +optional
	// +default=80
	port int,
	// Purge token, sent in --token-header, e.g. env://PURGE_TOKEN.
	// +optional
	token *dagger.Secret,
	// Header that carries the token.
	// +optional
	// +default="Purge-Token"
	tokenHeader string,
	// Request method: PURGE, BAN or any token your VCL handles.
	// +optional
	// +default="PURGE"
	method string,
	// Extra request headers as 'Name: value'.
	// +optional
	header []string,
	// How instances are reached: http or https (certificates checked against the URL's host).
	// +optional
	// +default="http"
	scheme string,
	// With https: do not check certificates.
	// +optional
	insecure bool,
	// Most requests in flight at once, over all instances.
	// +optional
	// +default=1024
	concurrency int,
	// Limit for each attempt.
	// +optional
	// +default="5s"
	timeout string,
	// More attempts after a connection error, timeout, 429 or 5xx.
	// +optional
	// +default=2
	retries int,
	// After purging, expect a miss on every instance ("miss"), then a hit ("miss,hit"); empty: no check.
	// +optional
	verify string,
	// Report format: text, json or markdown.
	// +optional
	// +default="text"
	format string,
) (string, error) {
	t := target{url, dnsName, record, resolver, instance, port, scheme, header, concurrency, timeout, retries, insecure, format}
	o, f, instances, urls, err := t.prepare(ctx)
	if err != nil {
		return "", err
	}
	o.Method, o.TokenHeader = strings.ToUpper(method), tokenHeader
	if token != nil {
		if o.Token, err = token.Plaintext(ctx); err != nil {
			return "", fmt.Errorf("read token: %w", err)
		}
	}
	var steps []purge.Expect
	if verify != "" {
		for _, s := range strings.Split(verify, ",") {
			e, err := purge.ParseExpect(s)
			if err != nil {
				return "", fmt.Errorf("--verify: %w", err)
			}
			steps = append(steps, e)
		}
	}
	rep, err := purge.Run(ctx, o, instances, urls)
	if err != nil {
		return "", err
	}
	ok := rep.OK()
	vo := o
	vo.Token, vo.Method = "", purge.DefaultVerifyMethod
	var checks []*purge.VerifyReport
	for _, e := range steps {
		v, err := purge.Verify(ctx, vo, e, instances, urls)
		if err != nil {
			return "", err
		}
		checks = append(checks, v)
		ok = ok && v.OK()
	}
	var b strings.Builder
	if err := purge.WriteReports(&b, f, rep, checks); err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("not every instance was purged:\n%s", b.String())
	}
	return b.String(), nil
}

// Verify asks EVERY instance for each URL (HEAD, or GET reading no body) and
// checks what its cache says (Cache-Status, RFC 9211, or X-Cache) against
// --expect: hit, fresh, stale, miss or any. It fails when any instance does
// not match; with --wait it asks again until all match or the time is up.
//
// +cache="never"
func (m *Cdnpurge) Verify(
	ctx context.Context,
	// Absolute URLs as the public sees them.
	url []string,
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
	// Static instances as ADDR[:PORT] instead of DNS.
	// +optional
	instance []string,
	// The instances' port.
	// +optional
	// +default=80
	port int,
	// HEAD, or GET when the site treats HEAD differently.
	// +optional
	// +default="HEAD"
	method string,
	// Extra request headers as 'Name: value' (e.g. Accept-Encoding: gzip for that variant).
	// +optional
	header []string,
	// http or https.
	// +optional
	// +default="http"
	scheme string,
	// With https: do not check certificates.
	// +optional
	insecure bool,
	// Most requests in flight at once.
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
	// Report format: text, json or markdown.
	// +optional
	// +default="text"
	format string,
) (string, error) {
	t := target{url, dnsName, record, resolver, instance, port, scheme, header, concurrency, timeout, retries, insecure, format}
	o, f, instances, urls, err := t.prepare(ctx)
	if err != nil {
		return "", err
	}
	exp, err := purge.ParseExpect(expect)
	if err != nil {
		return "", fmt.Errorf("--expect: %w", err)
	}
	o.Method = strings.ToUpper(method)
	if o.Method != http.MethodHead && o.Method != http.MethodGet {
		return "", fmt.Errorf("--method %q: verify sends HEAD or GET", method)
	}
	var w, iv time.Duration
	if wait != "" {
		if w, err = time.ParseDuration(wait); err != nil {
			return "", fmt.Errorf("--wait %q: give a duration such as 2m", wait)
		}
	}
	if iv, err = time.ParseDuration(interval); err != nil || iv <= 0 {
		return "", fmt.Errorf("--interval %q: give a duration such as 5s", interval)
	}
	rep, err := purge.VerifyUntil(ctx, o, exp, instances, urls, w, iv)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := rep.Write(&b, f); err != nil {
		return "", err
	}
	if !rep.OK() {
		return "", fmt.Errorf("not every instance matched:\n%s", b.String())
	}
	return b.String(), nil
}
