package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/purge"
)

// targetFlags are the flags purge and verify share: which instances, which
// URLs, how to reach them and how to report.
type targetFlags struct {
	dnsName, record, resolver string
	port                      int
	instances                 stringList
	dnsTimeout                time.Duration

	urls     stringList
	urlsFile string

	headers     stringList
	scheme      string
	insecure    bool
	concurrency int
	perInstance int
	timeout     time.Duration
	retries     int
	deadline    time.Duration
	format      string
}

func (t *targetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.dnsName, "dns-name", "", "the internal DNS `name` whose records list EVERY instance, e.g. my-cdn.internal\n(never the public host: that reaches one instance)")
	fs.StringVar(&t.record, "record", "aaaa", "record `type` listing the instances: aaaa (Fly.io's <app>.internal), a, or srv\n(srv: each record's port is used)")
	fs.IntVar(&t.port, "port", 80, "the instances' `port` (for aaaa, a and --instance without a port)")
	fs.StringVar(&t.resolver, "resolver", "", "DNS server as `HOST:PORT` (default: the nameservers in /etc/resolv.conf, each in turn)")
	fs.DurationVar(&t.dnsTimeout, "dns-timeout", 3*time.Second, "how long to wait for each DNS answer")
	fs.Var(&t.instances, "instance", "an instance as `ADDR[:PORT]` ([IPv6]:PORT for IPv6); repeatable; skips DNS")
	fs.Var(&t.urls, "url", "an absolute `URL` as the public sees it, e.g. https://example.com/feed; repeatable")
	fs.StringVar(&t.urlsFile, "urls-file", "", "read URLs from `FILE`, one a line ('-' = stdin); blank lines and # comments skipped")
	fs.Var(&t.headers, "header", "extra request header as `'Name: value'`; repeatable")
	fs.StringVar(&t.scheme, "scheme", "http", "how instances are reached, `http|https` (https checks the certificate against the URL's host)")
	fs.BoolVar(&t.insecure, "insecure", false, "with --scheme https: do not check certificates")
	fs.IntVar(&t.concurrency, "concurrency", purge.DefaultConcurrency, "most requests in flight (and connections open) at once, over all instances")
	fs.IntVar(&t.perInstance, "per-instance", purge.DefaultPerInstance, "most requests in flight to one instance (with many URLs)")
	fs.DurationVar(&t.timeout, "timeout", purge.DefaultTimeout, "limit for each attempt (connect, send, response headers)")
	fs.IntVar(&t.retries, "retries", purge.DefaultRetries, "more attempts after a connection error, timeout, 429 or 5xx, with backoff (0 = none)")
	fs.DurationVar(&t.deadline, "deadline", 0, "limit for the whole run, discovery included (0 = none); pending requests then fail")
	fs.StringVar(&t.format, "format", "text", "report `format`: text, json or markdown (a table for $GITHUB_STEP_SUMMARY)")
}

// options turns the request flags into purge.Options (without method and token).
func (t *targetFlags) options() (purge.Options, purge.Format, error) {
	var o purge.Options
	f, err := purge.ParseFormat(t.format)
	if err != nil {
		return o, f, err
	}
	o.Scheme = strings.ToLower(t.scheme)
	if o.Scheme != "http" && o.Scheme != "https" {
		return o, f, fmt.Errorf("--scheme %q: use http or https", t.scheme)
	}
	if t.insecure && o.Scheme != "https" {
		return o, f, errors.New("--insecure only applies with --scheme https")
	}
	o.Insecure = t.insecure
	if t.port < 1 || t.port > 65535 {
		return o, f, fmt.Errorf("--port %d: give a port from 1 to 65535", t.port)
	}
	if t.dnsTimeout <= 0 {
		return o, f, errors.New("--dns-timeout must be positive, e.g. 3s")
	}
	if t.deadline < 0 {
		return o, f, errors.New("--deadline must not be negative")
	}
	if t.concurrency < 1 || t.perInstance < 1 {
		return o, f, errors.New("--concurrency and --per-instance must be at least 1")
	}
	o.Concurrency, o.PerInstance = t.concurrency, t.perInstance
	if t.timeout <= 0 {
		return o, f, errors.New("--timeout must be positive, e.g. 5s")
	}
	o.Timeout = t.timeout
	switch {
	case t.retries < 0:
		return o, f, errors.New("--retries must not be negative")
	case t.retries == 0:
		o.Retries = -1
	default:
		o.Retries = t.retries
	}
	for _, h := range t.headers {
		k, v, err := purge.ParseHeader(h)
		if err != nil {
			return o, f, fmt.Errorf("--header: %w", err)
		}
		if o.Header == nil {
			o.Header = http.Header{}
		}
		o.Header.Add(k, v)
	}
	return o, f, nil
}

// readURLs collects --url and --urls-file; every URL is checked before
// anything is sent.
func (t *targetFlags) readURLs(stdin io.Reader) ([]*url.URL, error) {
	var out []*url.URL
	for _, s := range t.urls {
		u, err := purge.ParseURL(s)
		if err != nil {
			return nil, fmt.Errorf("--url: %w", err)
		}
		out = append(out, u)
	}
	if t.urlsFile != "" {
		var r io.Reader
		name := t.urlsFile
		if name == "-" {
			r, name = stdin, "stdin"
		} else {
			f, err := os.Open(name)
			if err != nil {
				return nil, fmt.Errorf("--urls-file: %w", err)
			}
			defer f.Close()
			r = f
		}
		more, err := purge.ReadURLs(r, name)
		if err != nil {
			return nil, fmt.Errorf("--urls-file: %w", err)
		}
		if len(more) == 0 {
			return nil, fmt.Errorf("--urls-file %s: no URLs in it", name)
		}
		out = append(out, more...)
	}
	if len(out) == 0 {
		return nil, errors.New("no URL given: use --url URL (repeatable) or --urls-file FILE")
	}
	return out, nil
}

// discover finds the instances from --instance or --dns-name.
func (t *targetFlags) discover(ctx context.Context) ([]purge.Instance, error) {
	switch {
	case len(t.instances) > 0 && t.dnsName != "":
		return nil, errors.New("give --dns-name or --instance, not both")
	case len(t.instances) > 0:
		return purge.StaticInstances(t.instances, t.port)
	case t.dnsName == "":
		return nil, errors.New("no instances: give --dns-name NAME (the internal name listing every instance) or --instance ADDR[:PORT]")
	}
	rt, err := purge.ParseRecordType(t.record)
	if err != nil {
		return nil, fmt.Errorf("--record: %w", err)
	}
	return purge.Discover(ctx, purge.Discovery{Name: t.dnsName, Record: rt, Port: t.port, Resolver: t.resolver, Timeout: t.dnsTimeout})
}

// load reads the URLs and finds the instances, under --deadline. On error it
// has printed it and returns the exit code; otherwise the caller must call
// cancel when done.
func (t *targetFlags) load(ctx context.Context, a *App, cmd string) (_ context.Context, cancel context.CancelFunc, urls []*url.URL, instances []purge.Instance, code int) {
	urls, err := t.readURLs(a.Stdin)
	if err != nil {
		return nil, nil, nil, nil, a.usageErr(cmd, err)
	}
	ctx, cancel = t.withDeadline(ctx)
	if instances, err = t.discover(ctx); err != nil {
		cancel()
		return nil, nil, nil, nil, a.fail(cmd, err)
	}
	return ctx, cancel, urls, instances, ExitOK
}

// withDeadline applies --deadline to ctx.
func (t *targetFlags) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if t.deadline > 0 {
		return context.WithTimeout(ctx, t.deadline)
	}
	return context.WithCancel(ctx)
}
